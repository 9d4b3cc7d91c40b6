#!/usr/bin/env node
// Checks the prebuilt binaries before they are packed (scripts/prebuild.sh runs this):
//   - each file is a 64-bit little-endian ELF for its directory's architecture;
//   - stockade-init and stockade-launch are static (no interpreter, no dynamic section):
//     stockade-init runs as PID 1 of a sandbox whose root holds no loader of ours, and
//     stockade-launch on any Linux of its architecture, whatever its glibc;
//   - the addon needs only libraries every glibc system with Node has, and only symbol versions
//     of glibc <= 2.28 (what Node's own Linux binaries require) and libstdc++ <= 3.4.25 /
//     CXXABI 1.3.11 (GCC 8: RHEL 8, Debian 10; see native/compat.cc);
//   - the syscall numbers compiled into each architecture's build (glibc's <sys/syscall.h> plus
//     native/sysnums.h's fallbacks) equal the kernel's own <asm/unistd.h> for that architecture,
//     by compiling _Static_asserts with that architecture's compiler.
// Usage: node scripts/check-prebuilds.js [ARCH...]   (default: x64 arm64)

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const ARCHS = {
  x64: { machine: 62, name: 'x86-64', triple: 'x86_64-linux-gnu', uname: 'x86_64' },
  arm64: { machine: 183, name: 'AArch64', triple: 'aarch64-linux-gnu', uname: 'aarch64' },
};
const ALLOWED_NEEDED = new Set([
  'libc.so.6',
  'libm.so.6',
  'libgcc_s.so.1',
  'libstdc++.so.6',
  'libpthread.so.0',
  'libdl.so.2',
  'ld-linux-x86-64.so.2',
  'ld-linux-aarch64.so.1',
]);
const MAX_VERSION = { GLIBC: [2, 28], GLIBCXX: [3, 4, 25], CXXABI: [1, 3, 11] };

const failures = [];
const fail = (msg) => failures.push(msg);

/** ELF header and program header types of a file (64-bit little-endian only). */
function readElf(file) {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const elf = { class64: b[4] === 2, little: b[5] === 1, machine: b.readUInt16LE(18), segments: [] };
  if (!elf.class64 || !elf.little) return elf;
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) elf.segments.push(b.readUInt32LE(phoff + i * phentsize));
  return elf;
}

const PT_DYNAMIC = 2;
const PT_INTERP = 3;

function checkMachine(file, arch) {
  const elf = readElf(file);
  if (!elf) return fail(`${file}: not an ELF file`);
  if (!elf.class64 || !elf.little) return fail(`${file}: not a 64-bit little-endian ELF`);
  if (elf.machine !== ARCHS[arch].machine)
    fail(`${file}: ELF machine ${elf.machine}, expected ${ARCHS[arch].machine} (${ARCHS[arch].name})`);
  return elf;
}

function readelf(args, file) {
  return execFileSync('readelf', ['--wide', ...args, file], { encoding: 'utf8' });
}

function checkAddon(file) {
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  for (const lib of needed) if (!ALLOWED_NEEDED.has(lib)) fail(`${file}: needs ${lib}, which a user's machine may lack`);
  const versions = new Set([...readelf(['-V'], file).matchAll(/Name: ((?:GLIBC|GLIBCXX|CXXABI)_[0-9.]+)/g)].map((m) => m[1]));
  for (const v of versions) {
    const [lib, num] = v.split('_');
    const have = num.split('.').map(Number);
    const max = MAX_VERSION[lib];
    const cmp = have.map((n, i) => n - (max[i] ?? 0)).find((d) => d !== 0) ?? 0;
    if (cmp > 0) fail(`${file}: needs ${v}, newer than ${lib} ${max.join('.')}`);
  }
  return { needed, versions: [...versions].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })) };
}

/** Compiles, for one architecture, a _Static_assert per SYS_ name used in native/. */
function checkSyscallNumbers(arch) {
  const names = new Set();
  for (const f of fs.readdirSync(path.join(root, 'native'))) {
    if (f === 'sysnums.h') continue;
    for (const m of fs.readFileSync(path.join(root, 'native', f), 'utf8').matchAll(/\bSYS_([a-z0-9_]+)/g)) names.add(m[1]);
  }
  const lines = ['#include <sys/syscall.h>', '#include "sysnums.h"', '#include <asm/unistd.h>'];
  for (const n of [...names].sort()) {
    lines.push(
      `#ifdef SYS_${n}`,
      `#ifdef __NR_${n}`,
      `_Static_assert(SYS_${n} == __NR_${n}, "SYS_${n} differs from the kernel's __NR_${n}");`,
    );
    // Newer than these kernel headers: only sysnums.h knows it, and from 424 on every
    // architecture shares the numbers.
    lines.push('#else', `_Static_assert(SYS_${n} >= 424, "SYS_${n} is unknown to the kernel headers");`, '#endif', '#endif');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-sysnums-'));
  const src = path.join(dir, `sysnums-${arch}.c`);
  fs.writeFileSync(src, `${lines.join('\n')}\n`);
  const cc = os.arch() === arch ? 'gcc' : `${ARCHS[arch].triple}-gcc`;
  try {
    execFileSync(cc, ['-fsyntax-only', '-D_GNU_SOURCE', '-I', path.join(root, 'native'), src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    fail(`syscall numbers for ${arch} (${cc}): ${String(err.stderr || err.message).trim()}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return names.size;
}

const archs = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(ARCHS);
for (const arch of archs) {
  const dir = path.join(root, 'prebuilds', `linux-${arch}`);
  const addon = path.join(dir, 'stockade.glibc.node');
  const init = path.join(dir, 'stockade-init');
  const launch = path.join(dir, 'stockade-launch');
  for (const f of [addon, init, launch]) if (!fs.existsSync(f)) fail(`${f}: missing`);
  if (failures.length) break;
  checkMachine(addon, arch);
  for (const bin of [init, launch]) {
    const elf = checkMachine(bin, arch);
    if (elf?.segments.some((t) => t === PT_INTERP || t === PT_DYNAMIC))
      fail(`${bin}: not static (has an interpreter or a dynamic section)`);
  }
  const { needed, versions } = checkAddon(addon);
  const count = checkSyscallNumbers(arch);
  const size = (f) => `${Math.round(fs.statSync(f).size / 1024)} KiB`;
  console.log(
    `linux-${arch}: addon ${size(addon)} (${ARCHS[arch].name}; needs ${needed.join(' ')}; newest: ${['GLIBC_', 'GLIBCXX_', 'CXXABI_']
      .map((p) => versions.filter((v) => v.startsWith(p)).at(-1))
      .filter(Boolean)
      .join(
        ' ',
      )}), stockade-init ${size(init)} and stockade-launch ${size(launch)} (static); ${count} syscall numbers match the kernel headers`,
  );
}
if (failures.length) {
  for (const f of failures) console.error(`check-prebuilds: ${f}`);
  process.exit(1);
}
