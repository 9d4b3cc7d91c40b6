// Budgets: what the proxies of every sandbox in this process may hold at once, so one hostile
// sandbox (or many) cannot push the embedding application into EMFILE or the caller's uid over
// pipe-user-pages-soft. Two levels: each sandbox's proxy has its own budget (limits.maxFds), and
// every proxy of the process draws from one host budget: half the process's RLIMIT_NOFILE soft
// limit (the other half stays the application's), half of /proc/sys/fs/pipe-user-pages-soft.
// What a connection costs, counted where it is spent: the accepted client socket 1 fd, its
// upstream 1, a kernel relay 5 (two pipes, and the duplicates it holds of Node's sockets). A budget reached is a refusal the front-end answers (and audits); a kernel relay
// that does not fit stays in JavaScript, which needs no pipes.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

/**
 * fds a kernel relay holds beyond what is already counted: two pipes of two fds, and the
 * upstream's duplicate (Node's upstream socket closes at the hand-off and gives its fd back; the
 * client's stays counted until the relay ends).
 */
export const RELAY_FDS = 5;
/** Pipe pages (4 KiB) a relay may use: two pipes, each the default 64 KiB (man 7 pipe). */
export const RELAY_PIPE_PAGES = 2 * 16;
/** The same for a relay whose pipes may grow to 1 MiB (native/relay.cc). */
export const RELAY_GROWN_PIPE_PAGES = 2 * 256;

/** /proc/sys/fs/pipe-max-size: the largest pipe an unprivileged process may ask for. */
export function pipeMaxSize(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim()) || 1 << 20;
  } catch {
    return 1 << 20;
  }
}

/** The soft RLIMIT_NOFILE of this process, from /proc/self/limits. */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch {}
  return 1024;
}

/** /proc/sys/fs/pipe-user-pages-soft (0: no limit); 16384 when it cannot be read. */
export function pipeUserPagesSoft(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-user-pages-soft', 'utf8').trim());
  } catch {
    return 16384;
  }
}

/** A counter with a ceiling; a child draws from its parent too. */
export class Budget {
  used = 0;

  constructor(
    readonly name: string,
    private readonly limitOf: () => number,
    private readonly parent?: Budget,
  ) {}

  get limit(): number {
    return this.limitOf();
  }

  /** Takes `n` if this budget and every parent have room; false (nothing taken) otherwise. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    if (this.parent && !this.parent.take(n)) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
    this.parent?.give(n);
  }

  /** Which level refused `n`: this one or a parent's name; undefined when it fits. */
  refusal(n: number): string | undefined {
    if (this.used + n > this.limit) return `${this.name} (${this.limit})`;
    return this.parent?.refusal(n);
  }
}

let cachedLimit = 0;
let cachedAt = 0;
function hostFdLimit(): number {
  // Re-read now and then: the application may raise its limit after the first sandbox.
  const now = Date.now();
  if (now - cachedAt > 5000) {
    cachedLimit = Math.max(64, Math.floor(openFileLimit() / 2));
    cachedAt = now;
  }
  return cachedLimit;
}

let pipeLimit: number | undefined;
function hostPipeLimit(): number {
  pipeLimit ??= pipeUserPagesSoft() === 0 ? Number.MAX_SAFE_INTEGER : Math.floor(pipeUserPagesSoft() / 2);
  return pipeLimit;
}

let room: number | undefined;
/**
 * Bytes of pipe buffers the caller's uid must still be able to add under pipe-user-pages-soft
 * once a kernel relay's pipes exist: 1 MiB (16 default pipes), or pipe-max-size if smaller; 0
 * when the limit is off. The host pipe budget counts only this process's relays; the soft limit
 * counts every pipe of the uid, in every process, and the kernel shows no total. So each relay
 * asks the kernel (native/relay.cc, HasPipeRoom) and stays in JavaScript when the uid is that
 * close to the limit: the caller's other programs keep getting full-size pipes.
 */
export function uidPipeRoom(): number {
  room ??= pipeUserPagesSoft() === 0 ? 0 : Math.min(1 << 20, pipeMaxSize());
  return room;
}

/** The process-wide budgets every EgressProxy draws from. */
export const hostBudget = {
  fds: new Budget('host file descriptor budget (half of RLIMIT_NOFILE)', hostFdLimit),
  pipePages: new Budget('host pipe budget (half of pipe-user-pages-soft)', hostPipeLimit),
  /** Bytes queued in Node for peers that do not read, all sandboxes together. */
  bufferedBytes: new Budget('host buffered bytes budget (an eighth of the memory, at most 1 GiB)', () =>
    Math.min(2 ** 30, Math.floor(totalmem() / 8)),
  ),
  /**
   * Until when (Date.now()) kernel relays are not tried: set for a second when the kernel said
   * the uid has no pipe room left, so a flood of tunnels does not create (and drop) pipes at a
   * uid that is at its limit.
   */
  uidPipesFullUntil: 0,
};

/** The note a tunnel's audit record carries when the uid's pipe room stopped a kernel relay. */
export function uidPipesFullNote(): string {
  return `budget: uid ${process.getuid?.() ?? '?'} has less than ${uidPipeRoom() >> 10} KiB of pipe-user-pages-soft (${pipeUserPagesSoft()} pages) left; relayed in JavaScript`;
}
