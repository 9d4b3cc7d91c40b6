// Reading an extra upstream CA (options.upstreamCa, --upstream-ca): one function, called when the
// options are checked (lib/plan.ts, synchronously, before anything is spawned) and by the proxy,
// which is handed the text read then. Kept apart from ./ca.ts so that checking options does not
// load an X.509 library.
import { readFileSync } from 'node:fs';

/** The PEM text of `file`; throws an Error with code EUPSTREAMCA naming the file otherwise. */
export function readUpstreamCa(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`upstream CA ${file}: cannot read: ${e.code ?? e.message}`), { code: 'EUPSTREAMCA', path: file });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw Object.assign(new Error(`upstream CA ${file}: no PEM certificate found`), { code: 'EUPSTREAMCA', path: file });
  }
  return text;
}
