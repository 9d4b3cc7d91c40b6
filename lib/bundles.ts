// Dependencies bundled into files of their own (scripts/bundle.js), loaded when first needed:
// through the launcher's V8 code cache where it has one (bin/stockade.js hands its loader over,
// setBundleLoader), else with require(). A checkout built with plain tsc and no bundle loads the
// packages from node_modules.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { libDir } from './location';

/** bin/stockade.js's loader: `flavor` names the bundle's code cache file. */
type BundleLoader = (file: string, flavor: string) => unknown;

let loader: BundleLoader = (file) => require(file);

let started: (() => void) | undefined;

/**
 * Called by bin/stockade.js once the CLI bundle is loaded; `onStarted` writes the code cache of
 * a `run`'s start (startupDone).
 */
export function setBundleLoader(load: BundleLoader, onStarted?: () => void): void {
  loader = load;
  started = onStarted;
}

/**
 * A command's start is over (`stockade run`: its payload exec'd): the launcher's code cache is
 * made then (bin/stockade.js), holding what the start compiled, and so what the next start runs
 * before its spawn.
 */
export function startupDone(): void {
  const onStarted = started;
  started = undefined;
  onStarted?.();
}

let x509Module: typeof import('./x509-exports') | undefined;

/**
 * What the per-run CA uses of the X.509 library (lib/x509-exports.ts), from dist/lib/x509.js:
 * loaded from its ~50 files in node_modules it was ~110 ms of a credential's start on the
 * development VM, bundled, trimmed and compiled from the code cache ~25.
 */
export function x509(): typeof import('./x509-exports') {
  if (x509Module === undefined) {
    const bundle = join(libDir, 'x509.js');
    x509Module = (existsSync(bundle) ? loader(bundle, 'x509') : require('./x509-exports')) as typeof import('./x509-exports');
  }
  return x509Module;
}
