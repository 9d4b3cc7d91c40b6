#!/usr/bin/env node
// The launcher. It loads the bundled CLI (dist/lib/cli.js, scripts/bundle.js) and, on Node
// versions that have it (22.1+), V8's compile cache: later starts skip compiling the bundle.
// The cache lives in the user's own ~/.cache/stockade (0700), not in a shared temporary
// directory where another user could plant compiled code for this one to run.
const path = require('node:path');
const mod = require('node:module');

if (typeof mod.enableCompileCache === 'function' && !process.env.NODE_COMPILE_CACHE) {
  try {
    const os = require('node:os');
    const base =
      process.env.XDG_CACHE_HOME && path.isAbsolute(process.env.XDG_CACHE_HOME)
        ? process.env.XDG_CACHE_HOME
        : path.join(os.homedir(), '.cache');
    mod.enableCompileCache(path.join(base, 'stockade', 'compile-cache'));
  } catch {
    // No cache is only slower.
  }
}

let cli;
try {
  cli = require('../dist/lib/cli.js');
} catch (err) {
  if (err?.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes('cli.js')) throw err;
  cli = require('../dist/lib/cli/main'); // a checkout built with plain tsc
}
cli.main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`stockade: ${err?.stack ?? err}\n`);
    process.exit(70);
  },
);
