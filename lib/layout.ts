// The sandbox's fixed filesystem layout: which host system directories are bound, what /dev
// holds, which /proc entries are masked, and the /etc files synthesized for every sandbox.
// lib/plan.ts adds what the options ask for (grants, home, /tmp, credentials) and decides how
// each entry is reached; these tables say only what is there.
import { MountKind, type NativeMount } from './native';

export const SANDBOX_UID = 65534;
export const SANDBOX_HOME = '/home/nobody';

/** Host directories bound read-only (or re-created as the same symlink) by default. */
export const systemDirs = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** Host files and directories of /etc the sandbox needs; everything else of /etc is synthesized. */
export const etcBinds = ['/etc/ld.so.cache', '/etc/alternatives', '/etc/ssl/certs', '/etc/ssl/openssl.cnf', '/etc/localtime'];

/** The CA bundle path when credentials are injected (the host's CAs plus the per-run CA). */
export const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Device nodes bound from the host's /dev. */
const devices = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/** /proc entries that reveal or reconfigure the host kernel: /dev/null over files, empty dirs, read-only. */
const procMaskedFiles = [
  'kcore',
  'keys',
  'key-users',
  'timer_list',
  'sched_debug',
  'sysrq-trigger',
  'kallsyms',
  'kmsg',
  'latency_stats',
  'kpagecount',
  'kpageflags',
  'kpagecgroup',
  'config.gz',
  'vmallocinfo',
  'slabinfo',
  'iomem',
];
const procMaskedDirs = ['acpi', 'scsi', 'asound', 'firmware', 'driver'];
const procReadOnly = ['sys', 'bus', 'irq', 'fs'];

/** /dev: a small tmpfs with the host's harmless devices, a private devpts, shm and the fd links. */
export function devMounts(tmpSize: number): NativeMount[] {
  const out: NativeMount[] = [{ kind: MountKind.tmpfs, target: '/dev', data: 'mode=0755,size=64k' }];
  for (const d of devices) {
    out.push({ kind: MountKind.bind, source: `/dev/${d}`, target: `/dev/${d}`, readOnly: false, devices: true });
  }
  out.push(
    { kind: MountKind.devpts, target: '/dev/pts' },
    { kind: MountKind.symlink, source: 'pts/ptmx', target: '/dev/ptmx' },
    { kind: MountKind.tmpfs, target: '/dev/shm', data: `mode=1777,size=${tmpSize}` },
  );
  for (const [name, target] of [
    ['fd', '/proc/self/fd'],
    ['stdin', '/proc/self/fd/0'],
    ['stdout', '/proc/self/fd/1'],
    ['stderr', '/proc/self/fd/2'],
  ]) {
    out.push({ kind: MountKind.symlink, source: target, target: `/dev/${name}` });
  }
  return out;
}

/** A fresh procfs of the sandbox's pid namespace, with the host-revealing entries masked. */
export function procMounts(): NativeMount[] {
  return [
    { kind: MountKind.proc, target: '/proc' },
    ...procMaskedFiles.map((f): NativeMount => ({ kind: MountKind.maskFile, target: `/proc/${f}` })),
    ...procMaskedDirs.map((d): NativeMount => ({ kind: MountKind.maskDir, target: `/proc/${d}` })),
    ...procReadOnly.map((d): NativeMount => ({ kind: MountKind.readOnly, target: `/proc/${d}` })),
  ];
}

/** A file the sandbox gets with this content (written to its own tmpfs, bound read-only). */
export function synthesized(target: string, data: string | Buffer, mode = 0o644): NativeMount {
  return { kind: MountKind.file, target, data, mode };
}

/** The /etc files every sandbox gets instead of the host's. */
export function etcFiles(hostname: string, resolvConf: string): NativeMount[] {
  return [
    synthesized(
      '/etc/passwd',
      `root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:${SANDBOX_UID}:${SANDBOX_UID}:nobody:${SANDBOX_HOME}:/usr/sbin/nologin\n`,
    ),
    synthesized('/etc/group', `root:x:0:\nnogroup:x:${SANDBOX_UID}:\n`),
    synthesized('/etc/hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`),
    synthesized('/etc/hostname', `${hostname}\n`),
    synthesized(
      '/etc/nsswitch.conf',
      'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n',
    ),
    synthesized('/etc/resolv.conf', resolvConf),
  ];
}
