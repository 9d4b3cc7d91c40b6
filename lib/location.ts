// Where stockade's own files are. The CLI runs from one bundled file, dist/lib/cli.js
// (scripts/bundle.js), in which every module's __dirname is that of the bundle; the library runs
// from dist/lib/**/*.js. Both put this module's __dirname at dist/lib, so paths to files that must
// stay files of their own (the fetch preload bound into sandboxes, the demo's server, the addon)
// are made from here, never from a module's own __dirname.
import { join } from 'node:path';

export const libDir = __dirname;

/** The package's root (package.json, stockade.schema.json): two levels above dist/lib. */
export const packageRoot = join(libDir, '..', '..');
