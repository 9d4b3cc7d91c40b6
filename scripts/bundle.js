#!/usr/bin/env node
// Bundles the CLI into one file, dist/lib/cli.js, after tsc has written dist/ (npm run build:ts,
// prepack). Why: `stockade run` sits in front of every MCP server start, and resolving and
// reading ~60 small modules costs a launcher on a cold page cache more than evaluating them.
// The bundle is made from tsc's output, so relative paths (package.json) mean what they mean in
// dist/lib/cli; it sits in dist/lib so that lib/layout.ts's __dirname is the same in both.
// Dependencies stay in node_modules: they are loaded lazily, when a flag needs them (pino, yaml,
// ajv), and pino's worker files must stay files. All but node-gyp-build, which every `run` loads
// to find the addon: bundled, its two files are compiled from the code cache (bin/stockade.js)
// instead of from source at each start. The X.509 library, which a credential's per-run CA needs
// before the spawn, gets a bundle of its own with what it loads (dist/lib/x509.js from
// lib/x509-exports.ts: reflect-metadata, tsyringe, the asn1 packages, ~50 files), and a code
// cache of its own (lib/bundles.ts): a `run` without credentials neither reads it nor holds its
// functions in its cache.
// lib/ imports Node's own modules as `import fs = require('node:fs')`, never `import * as fs`:
// for that, tsc (and esbuild alike) emit a helper that copies every export of the module into
// an object of getters as each module loads (~3 ms of every start, over node:fs, node:path and
// the rest); biome's noNamespaceImport keeps it so (biome.json).
// Whitespace is minified (identifiers are kept, for stack traces): 30% less to read and hash at
// each start, and no comment's non-ASCII text, so bin/stockade.js reads the bundle as latin1.
const path = require('node:path');

const root = path.join(__dirname, '..');
const esbuild = require('esbuild');
const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', minifyWhitespace: true, legalComments: 'none' };
Promise.all([
  esbuild.build({
    entryPoints: [path.join(root, 'dist/lib/cli/main.js')],
    ...common,
    outfile: path.join(root, 'dist/lib/cli.js'),
    plugins: [
      {
        name: 'dependencies-external',
        setup(build) {
          build.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path === 'node-gyp-build' ? undefined : { path: args.path, external: true },
          );
        },
      },
    ],
    logLevel: 'warning',
    // The addon is found at run time (node-gyp-build): a require of a computed path, by design.
    logOverride: { 'unsupported-require-call': 'silent' },
  }),
  esbuild.build({
    ...common,
    entryPoints: [path.join(root, 'lib/x509-exports.ts')],
    // The library's ES modules, which esbuild can trim to what lib/x509-exports.ts names.
    mainFields: ['module', 'main'],
    outfile: path.join(root, 'dist/lib/x509.js'),
    logLevel: 'warning',
  }),
]).catch(() => process.exit(1));
