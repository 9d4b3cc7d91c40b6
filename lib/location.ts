// Where stockade's own files are. The CLI runs from one bundled file, dist/lib/cli.js
// (scripts/bundle.js), in which every module's __dirname is that of the bundle; the library runs
// from dist/lib/**/*.js. Both put this module's __dirname at dist/lib, so paths to files that must
// stay files of their own (the fetch preload bound into sandboxes, the demo's server, the addon)
// are made from here, never from a module's own __dirname.
export const libDir = __dirname;
