#!/usr/bin/env node
// The launcher. It loads the bundled CLI (dist/lib/cli.js, scripts/bundle.js) with V8's compile
// cache: Node's own where it has one (22.1+), else by hand (loadBundle): later starts skip
// compiling the bundle.
// The cache lives beside the bundle, in the package's own dist/ (dist/.compile-cache), never in
// the user's home: V8's cached data is bytecode that V8 runs without reading the source again,
// so whoever can write it can run code as the next user of the launcher. Beside the bundle it is
// exactly as protected as the code itself (a sandbox granted ~/.cache, or a shared temporary
// directory, would otherwise be a way out). Where dist/ is not writable (a root-owned global
// install) there is no cache: only slower.
const path = require('node:path');
// The CommonJS loader's Module (what require('node:module') returns) without loading that public
// module, which loads the ES module loader and source maps besides (~1 ms of each start). It is
// loaded only where it may have module.enableCompileCache (22.1+), which it adds to Module.
const mod = Number(process.versions.node.split('.')[0]) >= 22 ? require('node:module') : module.constructor;

const bundle = path.join(__dirname, '..', 'dist', 'lib', 'cli.js');
const cacheDir = path.join(__dirname, '..', 'dist', '.compile-cache');

const nativeCache = typeof mod.enableCompileCache === 'function';
if (nativeCache && !process.env.NODE_COMPILE_CACHE && !process.env.STOCKADE_NO_COMPILE_CACHE) {
  try {
    mod.enableCompileCache(cacheDir);
  } catch {
    // No cache is only slower.
  }
}

/** The write of `run`'s cache, held until its start is over (setBundleLoader's callback). */
let pendingStartCache;

/**
 * Node 20 has no module.enableCompileCache: the bundle is compiled through vm.Script with V8's
 * code cache by hand (what the v8-compile-cache package does), ~10-30 ms of a start. The cache
 * file is named after `flavor`, the Node version, the architecture and the bundle's size and
 * mtime, and V8 itself rejects data made from other source or by another V8
 * (cachedDataRejected), which is then made anew. It is written once: `run`'s when its payload
 * exec'd (what its start compiled, below), every other's at the first exit. `run` has a file of
 * its own, since a cache written by `stockade --version` or `doctor` (often the first command
 * after an install) holds almost none of what `run` compiles (~10 ms of every later start); a
 * bundle of dependencies has one too (`x509`, lib/bundles.ts). Anything unusual (no bundle,
 * dist/ read-only) falls back to require() or to no cache.
 */
function loadBundle(file, flavor) {
  if (nativeCache || process.env.STOCKADE_NO_COMPILE_CACHE) return require(file);
  const fs = require('node:fs');
  let source;
  let cacheFile;
  try {
    // The bundle is ASCII (esbuild escapes the rest): latin1 is then the same text, made without
    // UTF-8 decoding (~1 ms of 400 KB).
    const bytes = fs.readFileSync(file);
    source = require('node:buffer').isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
    const st = fs.statSync(file);
    cacheFile = path.join(cacheDir, `${flavor}-${process.version}-${process.arch}-${st.size}-${Math.floor(st.mtimeMs)}.v8`);
  } catch {
    return require(file);
  }
  const vm = require('node:vm');
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {}
  const script = new vm.Script(mod.wrap(source), { filename: file, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) {
    const write = () => {
      try {
        fs.mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
        const tmp = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
        fs.renameSync(tmp, cacheFile);
        // Caches of earlier builds or Node versions are never read again.
        for (const old of fs.readdirSync(cacheDir)) {
          if (old.startsWith(`${flavor}-`) && path.join(cacheDir, old) !== cacheFile) fs.rmSync(path.join(cacheDir, old), { force: true });
        }
      } catch {
        // No cache is only slower.
      }
    };
    // `run`'s cache holds what its start compiled, up to the payload's exec (lib/bundles.ts
    // startupDone): what runs after it compiles off the critical path, and a cache of every
    // function the launcher ever ran took ~1.5 ms longer to read at each start (526 vs 264 KB).
    // A run whose payload never started writes none: the next one does.
    if (flavor === 'run') pendingStartCache = write;
    else process.once('exit', write);
  }
  const m = { exports: {}, filename: file, id: file, loaded: false };
  script.runInThisContext()(m.exports, mod.createRequire(file), m, file, path.dirname(file));
  m.loaded = true;
  return m.exports;
}

let cli;
try {
  cli = loadBundle(bundle, process.argv[2] === 'run' ? 'run' : 'cli');
} catch (err) {
  if (err?.code !== 'ENOENT' && (err?.code !== 'MODULE_NOT_FOUND' || !String(err.message).includes('cli.js'))) throw err;
  cli = require('../dist/lib/cli/main'); // a checkout built with plain tsc
}
// The bundles of dependencies (dist/lib/x509.js) load through the same cache (lib/bundles.ts),
// which also says when `run`'s start is over.
cli.setBundleLoader(loadBundle, () => {
  const write = pendingStartCache;
  pendingStartCache = undefined;
  if (write === undefined) return;
  // On the next turn of the loop, so that no other listener of the moment waits for it, or at
  // the exit if that comes first (a payload such as `true` may be gone by then).
  const once = () => {
    clearImmediate(timer);
    process.off('exit', once);
    write();
  };
  const timer = setImmediate(once);
  process.once('exit', once);
});
cli.main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    // lib/cli/main.ts reports every error it knows as one line; this is the last resort for one
    // thrown outside it: still one line (EX_SOFTWARE).
    process.stderr.write(`stockade: internal error: ${err?.message ?? err} (a bug in stockade: please report it)\n`);
    process.exit(70);
  },
);
