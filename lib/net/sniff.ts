// Recognises what a client sent first on a raw connection: a TLS ClientHello (name from SNI), an
// HTTP/1.x request (name from the Host header), or something else. Used by transparent mode to
// find the name, and by CONNECT/SOCKS tunnels to check that SNI and Host agree with the target.
import { parseClientHello } from './sni';

export type SniffResult =
  | { kind: 'need-more' }
  | { kind: 'other' }
  | { kind: 'invalid'; protocol: 'tls' | 'http'; reason: string }
  | { kind: 'tls'; host: string | null }
  | { kind: 'http'; host: string | null };

const METHOD = /^[A-Z]{1,20} /;

export function sniff(data: Buffer, maxHeaderSize: number): SniffResult {
  if (data.length === 0) return { kind: 'need-more' };
  if (data[0] === 0x16) {
    const hello = parseClientHello(data);
    if (hello.kind === 'tls') return { kind: 'tls', host: hello.sni };
    if (hello.kind === 'invalid') return { kind: 'invalid', protocol: 'tls', reason: hello.reason };
    return hello.kind === 'need-more' ? hello : { kind: 'other' };
  }
  const start = data.subarray(0, 21).toString('latin1');
  if (!METHOD.test(start)) {
    // A method prefix that is still arriving ('GE') waits for more; anything else is opaque.
    return /^[A-Z]{1,20}$/.test(start) ? { kind: 'need-more' } : { kind: 'other' };
  }
  return sniffHttpHost(data, maxHeaderSize);
}

const REQUEST_LINE = /^[A-Z]+ \S+ HTTP\/1\.[01]$/;

function sniffHttpHost(data: Buffer, maxHeaderSize: number): SniffResult {
  // The first line, once whole, tells a line protocol's command (SMTP's `EHLO relay`, Redis's
  // inline `SET k v`: an upper-case word and a space too) from HTTP/1.x, whose request line names
  // its version. Waiting for a head that such a client never sends hung its tunnel until the
  // idle timeout. A line that names HTTP at all is held to the strict form, as before: one a
  // lenient server might still read as HTTP (`GET  /  HTTP/1.1`) is refused, not passed unread.
  const firstEnd = data.indexOf(0x0a);
  if (firstEnd >= 0) {
    const first = data.toString('latin1', 0, firstEnd).replace(/\r$/, '');
    if (!REQUEST_LINE.test(first)) {
      return /http\//i.test(first) ? { kind: 'invalid', protocol: 'http', reason: 'malformed request line' } : { kind: 'other' };
    }
  }
  // The head ends at an empty line, CRLF or a bare LF (which lenient servers accept): its
  // headers are read as such a server would read them.
  const crlf = data.indexOf('\r\n\r\n');
  const lf = data.indexOf('\n\n');
  const end = crlf < 0 ? lf : lf < 0 ? crlf : Math.min(crlf, lf);
  if (end < 0) {
    return data.length > maxHeaderSize
      ? { kind: 'invalid', protocol: 'http', reason: `request head larger than ${maxHeaderSize} bytes` }
      : { kind: 'need-more' };
  }
  const lines = data.subarray(0, end).toString('latin1').split(/\r?\n/);
  let host: string | null = null;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /\s/.test(line.slice(0, colon))) {
      return { kind: 'invalid', protocol: 'http', reason: 'malformed header line' };
    }
    if (line.slice(0, colon).toLowerCase() !== 'host') continue;
    // Two Host headers is a request-smuggling classic: refuse rather than pick one.
    if (host !== null) return { kind: 'invalid', protocol: 'http', reason: 'more than one Host header' };
    host = line.slice(colon + 1).trim();
  }
  return { kind: 'http', host };
}
