// Seccomp violations as people read them: stockade-init's supervisor reports the syscall number
// and its raw arguments (native/initproto.h); this names the call and the argument that decided
// it — `unshare(CLONE_NEWUSER)`, `socket(AF_PACKET, SOCK_RAW)`, `ioctl(TIOCSTI)`.
import { constants as osConstants } from 'node:os';
import type { NativeViolation } from './native';
import { syscallNames } from './syscalls';

export interface SeccompViolation {
  kind: 'seccomp';
  /** The syscall's name, or `syscall_N` for a number this build does not know. */
  syscall: string;
  nr: number;
  arch: 'x86_64' | 'aarch64' | string;
  /** The argument that decided the refusal, when there is one (flags, family and type, command). */
  argument?: string;
  /** The six raw arguments, hexadecimal. */
  args: string[];
  /** 'killed': the sandbox was ended (as by SIGSYS); 'refused': the call was answered `errno`. */
  action: 'killed' | 'refused';
  errno?: string;
  /** The caller's pid inside the sandbox. */
  callerPid: number;
  /** `killed: unshare(CLONE_NEWUSER) is not allowed in the sandbox`. */
  message: string;
}

/** CLOCK_MONOTONIC in ms: the clock of stockade-init's and the tool relay's stamps (native/). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * On a violation's audit record (not enumerable, so never logged): when it happened, in
 * monotonicMs. A seccomp violation reaches the event loop later than it happened, perhaps after
 * the answer of the tool call that caused it; this is what lib/mcp/filter.ts's activeCalls(at)
 * is asked with. Other violations are stamped as they are reported.
 */
export const SEEN_AT: unique symbol = Symbol('stockade.violation.seenAt');

/** `record`, stamped with SEEN_AT. */
export function stampSeen<T extends object>(record: T, at: number): T & { readonly [SEEN_AT]?: number } {
  return Object.defineProperty(record, SEEN_AT, { value: at, enumerable: false });
}

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;

const cloneFlags: [number, string][] = [
  [0x00020000, 'CLONE_NEWNS'],
  [0x02000000, 'CLONE_NEWCGROUP'],
  [0x04000000, 'CLONE_NEWUTS'],
  [0x08000000, 'CLONE_NEWIPC'],
  [0x10000000, 'CLONE_NEWUSER'],
  [0x20000000, 'CLONE_NEWPID'],
  [0x40000000, 'CLONE_NEWNET'],
];
const families: Record<number, string> = {
  1: 'AF_UNIX',
  2: 'AF_INET',
  10: 'AF_INET6',
  15: 'AF_KEY',
  16: 'AF_NETLINK',
  17: 'AF_PACKET',
  30: 'AF_TIPC',
  31: 'AF_BLUETOOTH',
  38: 'AF_ALG',
  40: 'AF_VSOCK',
  44: 'AF_XDP',
};
const socketTypes: Record<number, string> = {
  1: 'SOCK_STREAM',
  2: 'SOCK_DGRAM',
  3: 'SOCK_RAW',
  4: 'SOCK_RDM',
  5: 'SOCK_SEQPACKET',
  6: 'SOCK_DCCP',
  10: 'SOCK_PACKET',
};
const ioctls: Record<number, string> = { 21522: 'TIOCSTI', 21532: 'TIOCLINUX' };

const hex = (n: bigint | number) => `0x${n.toString(16)}`;
const low32 = (n: bigint) => Number(n & 0xffffffffn);

function flagsOf(value: number): string {
  const names = cloneFlags.filter(([bit]) => (value & bit) !== 0).map(([, name]) => name);
  return names.length > 0 ? names.join('|') : hex(value);
}

/** The deciding argument of the calls whose refusal depends on one. */
function argumentOf(syscall: string, args: bigint[]): string | undefined {
  switch (syscall) {
    case 'clone':
    case 'unshare':
      return flagsOf(low32(args[0]));
    case 'setns':
      return flagsOf(low32(args[1]));
    case 'socket':
    case 'socketpair': {
      const family = low32(args[0]);
      const type = low32(args[1]) & 0xf;
      return `${families[family] ?? `family ${family}`}, ${socketTypes[type] ?? `type ${type}`}`;
    }
    case 'ioctl': {
      const cmd = low32(args[1]);
      return ioctls[cmd] ?? hex(cmd);
    }
    case 'personality':
      return hex(low32(args[0]));
    default:
      return undefined;
  }
}

export function describeViolation(v: NativeViolation): SeccompViolation {
  const arch = v.arch === AUDIT_ARCH_X86_64 ? 'x86_64' : v.arch === AUDIT_ARCH_AARCH64 ? 'aarch64' : hex(v.arch);
  const table = arch === 'x86_64' ? syscallNames.x64 : arch === 'aarch64' ? syscallNames.arm64 : {};
  const syscall = table[v.nr] ?? `syscall_${v.nr}`;
  const argument = argumentOf(syscall, v.args);
  const action = v.errno === 0 ? 'killed' : 'refused';
  const errno = v.errno === 0 ? undefined : errnoName(v.errno);
  const call = `${syscall}(${argument ?? ''})`;
  return {
    kind: 'seccomp',
    syscall,
    nr: v.nr,
    arch,
    ...(argument === undefined ? {} : { argument }),
    args: v.args.map(hex),
    action,
    ...(errno === undefined ? {} : { errno }),
    callerPid: v.pid,
    message: `${action}: ${call} is not allowed in the sandbox${errno ? ` (${errno})` : ''}`,
  };
}

function errnoName(errno: number): string {
  const entry = Object.entries(osConstants.errno).find(([, n]) => n === errno);
  return entry ? entry[0] : `errno ${errno}`;
}
