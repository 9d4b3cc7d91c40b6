// Handing a tunnel from Node's sockets to the kernel relay (native/relay.cc). Once a tunnel has
// been decided and its first bytes checked, the proxy has nothing more to look at, and copying
// every byte through JavaScript costs about four times the proxy CPU per GiB of splice(2)
// (bench/egress.ts). The hand-off, in order: stop reading both sockets, take what Node already
// read but did not forward (the relay writes it first), wait until Node has flushed what it was
// asked to write (and repeat: see Connector.splice), duplicate the two fds into a Relay, and
// only then destroy Node's sockets (closing Node's fds sends no FIN while the relay holds
// duplicates). A socket Node cannot give up cleanly (no fd, EOF already seen, someone else
// listening for data) stays with the JavaScript relay, as does every failure.
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { type NativeRelay, native } from '../native';

/** The parts of Node's stream handle (TCPWrap) the hand-off uses. */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

interface SocketInternals {
  _handle?: StreamHandle | null;
  _readableState?: { ended?: boolean };
  encrypted?: boolean;
}

export interface KernelRelayResult {
  /** Bytes the relay read from the client (what Node had read before is not included). */
  bytesUp: number;
  /** Bytes the relay read from the upstream. */
  bytesDown: number;
  /** An errno code name, or 'idle timeout'; absent when both sides closed normally. */
  error?: string;
}

type RelayClass = ReturnType<typeof native>['Relay'];
let relayClass: RelayClass | undefined;
let loadFailed = false;

function Relay(): RelayClass | undefined {
  if (relayClass || loadFailed) return relayClass;
  try {
    relayClass = native().Relay;
  } catch {
    // No addon built for this platform: tunnels keep the JavaScript relay.
    loadFailed = true;
  }
  return relayClass;
}

function fdOf(s: Socket): number {
  const fd = (s as unknown as SocketInternals)._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/**
 * Whether `s` can be given up to the kernel relay: open, a plain (not TLS) socket with an fd,
 * no EOF seen or sent in either direction (Node would already have answered it), and nobody
 * else reading its data.
 */
export function canHandOff(s: Socket): boolean {
  const i = s as unknown as SocketInternals;
  return (
    Relay() !== undefined &&
    !s.destroyed &&
    !s.connecting &&
    !i.encrypted &&
    fdOf(s) >= 0 &&
    typeof i._handle?.readStop === 'function' &&
    i._readableState?.ended !== true &&
    !s.readableEnded &&
    !s.writableEnded &&
    s.listenerCount('data') === 0
  );
}

/**
 * Stops libuv reading `s` and returns what Node had read but nobody consumed. read() may start
 * a read on the handle; nothing arrives before the readStop() below, in the same tick.
 */
export function stopReading(s: Socket): Buffer {
  s.pause();
  const chunks: Buffer[] = [];
  while (s.readableLength > 0) {
    const c = s.read() as Buffer | null;
    if (c === null) break;
    chunks.push(c);
  }
  const h = (s as unknown as SocketInternals)._handle as StreamHandle;
  h.reading = false;
  h.readStop?.();
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/**
 * Undoes stopReading() when the hand-off does not happen (a budget has no room, the relay could
 * not start): libuv reads the handle again. resume() alone is not enough: the read() calls of
 * stopReading() may have left the stream believing a read is pending, so it never asks again.
 */
export function resumeReading(s: Socket): void {
  const h = (s as unknown as SocketInternals)._handle;
  if (!s.destroyed && h && !h.reading && typeof h.readStart === 'function') {
    h.reading = true;
    h.readStart();
  }
  s.resume();
}

/** Calls `fn` once everything Node was asked to write on `sockets` is in the kernel. */
export function whenFlushed(sockets: Socket[], fn: () => void): void {
  const waiting = sockets.filter((s) => s.writableLength > 0 && !s.destroyed);
  if (waiting.length === 0) {
    fn();
    return;
  }
  let left = waiting.length;
  // An empty write completes after every write queued before it (writes complete in order).
  for (const s of waiting) {
    s.write(Buffer.alloc(0), () => {
      if (--left === 0) fn();
    });
  }
}

/**
 * Starts a Relay on the two sockets, then destroys them. Returns the relay, or the errno name
 * of what failed (the sockets are untouched and the caller relays them itself): ENOBUFS when
 * the uid has less than `pipeRoom` bytes of pipe-user-pages-soft left (native/relay.cc).
 */
export function startKernelRelay(
  client: Socket,
  upstream: Socket,
  upHead: Buffer,
  idleMs: number,
  growPipes: boolean,
  pipeRoom: number,
  done: (r: KernelRelayResult) => void,
): NativeRelay | string {
  const R = Relay();
  if (!R) return 'ENOSYS';
  const relay = new R(
    upHead,
    Buffer.alloc(0),
    idleMs,
    (bytesUp, bytesDown, errno, timedOut) => {
      const error = timedOut ? 'idle timeout' : errno !== 0 ? getSystemErrorName(-errno) : undefined;
      done({ bytesUp, bytesDown, ...(error ? { error } : {}) });
    },
    growPipes,
    pipeRoom,
  );
  const err = relay.start(fdOf(client), fdOf(upstream));
  if (err !== 0) return getSystemErrorName(-err);
  // libuv has no read or write pending on either (reads stopped, writes flushed), so closing
  // Node's handles loses nothing; the relay's duplicates keep both connections open.
  client.destroy();
  upstream.destroy();
  return relay;
}
