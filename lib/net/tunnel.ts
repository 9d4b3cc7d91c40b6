// The tunnel: relays client <-> upstream once a connection has been allowed. It holds the
// client's first bytes until their SNI / Host agree with the decision (./decision.ts), scans
// plaintext for placeholders when a guard is set (lib/secrets), and once nothing is left to
// inspect hands the two sockets to a kernel relay (./relay.ts, splice(2)), or relays in
// JavaScript when it cannot.
import type { Socket } from 'node:net';
import type { NativeRelay } from '../native';
import { hostBudget, RELAY_FDS, RELAY_GROWN_PIPE_PAGES, RELAY_PIPE_PAGES, uidPipeRoom, uidPipesFullNote } from './budget';
import type { Connector, TunnelUpstream } from './connector';
import type { Decision, PlaintextGuard, Via } from './decision';
import { canHandOff, resumeReading, startKernelRelay, stopReading, whenFlushed } from './relay';
import { sniff } from './sniff';

/**
 * How long a guarded tunnel holds a tail that is only the start of the placeholders' public
 * prefix before it lets it go (the scanner still sees it with the next chunk).
 */
const TAIL_RELEASE_MS = 50;

/**
 * Relays client <-> upstream, counting bytes; one audit record once both are closed. A side
 * that ends normally has its FIN passed on after everything it sent has been flushed; an error,
 * the idle timeout or a refusal destroys both at once. Once the first bytes are checked (or
 * need no check), the tunnel goes to a kernel relay when it can, else stays in JavaScript.
 */
export function spliceTunnel(
  c: Connector,
  via: Via,
  client: Socket,
  tunnel: TunnelUpstream,
  d: Extract<Decision, { allowed: true }>,
  head: Buffer,
  started: number,
  inspect: boolean,
): void {
  const upstream = tunnel.socket;
  let bytesUp = 0;
  let bytesDown = 0;
  let denial: string | undefined;
  let error: string | undefined;
  // A budget that kept this tunnel from the kernel relay (recorded, the tunnel goes on in JS).
  let budget: string | undefined;
  let closed = 0;
  // inspect: holding the client's bytes; js: relayed here; handing: reads stopped, waiting for
  // Node's writes to flush; kernel: a native Relay owns the connection (Node's sockets are gone).
  let mode: 'inspect' | 'js' | 'handing' | 'kernel' = 'inspect';
  const record = (): void =>
    c.audit({
      via,
      host: d.host,
      port: d.port,
      address: d.address,
      decision: denial ? 'deny' : 'allow',
      rule: denial ?? d.rule,
      bytesUp,
      bytesDown,
      durationMs: Date.now() - started,
      ...(error && !denial ? { error } : {}),
      ...(budget ? { budget } : {}),
      ...(d.calls ? { calls: d.calls } : {}),
    });
  const abort = (): void => {
    client.destroy();
    upstream.destroy();
  };
  // Per-tool grants: the grant that allowed this tunnel ended (./decision.ts GrantScope.hold).
  let relay: NativeRelay | undefined;
  const forget = c.hold(d, (reason) => {
    error ??= reason;
    if (mode === 'kernel' && relay) relay.close();
    else abort();
  });
  const onClose = (other: Socket) => (hadError: boolean) => {
    if (mode === 'kernel') return; // closed for the hand-off; the relay records the end
    if (hadError || denial || error) other.destroy();
    else if (!other.destroyed) {
      // Pass the FIN on once what is queued for `other` has been written, then let it go.
      other.end(() => other.destroy());
    }
    if (++closed === 2) {
      forget();
      record();
    }
  };
  client.once('close', onClose(upstream));
  upstream.once('close', onClose(client));
  const idle = c.limits.idleTimeout;
  for (const s of [client, upstream]) {
    s.setTimeout(idle, () => {
      error ??= 'idle timeout';
      abort();
    });
    s.setNoDelay(true);
    s.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
      abort();
    });
  }
  // Set while a TLS tunnel under the guard waits for the upstream to answer in TLS.
  let watchDown: ((chunk: Buffer) => void) | undefined;
  // A write the kernel does not take waits in Node until the client reads: charged to the
  // sandbox's buffered-bytes budget, and a tunnel that does not fit is closed.
  const overBudget = (s: Socket): boolean => {
    const refused = c.chargeQueued(s);
    if (!refused) return false;
    budget = `${refused}; tunnel closed`;
    error ??= 'budget';
    abort();
    return true;
  };
  tunnel.setSink((chunk) => {
    bytesDown += chunk.length;
    watchDown?.(chunk);
    if (client.write(chunk)) return true;
    if (overBudget(client)) return false;
    client.once('drain', () => mode !== 'handing' && upstream.resume());
    return false;
  });
  upstream.once('end', () => client.end());

  // `first` has been counted in bytesUp already.
  const relayInJs = (first: Buffer): void => {
    mode = 'js';
    if (first.length > 0) upstream.write(first);
    client.on('data', (chunk: Buffer) => {
      bytesUp += chunk.length;
    });
    client.pipe(upstream);
  };
  // With a guard, a stream that does not open with a TLS record is scanned chunk by chunk, for
  // as long as it lasts. One that opens with a ClientHello is scanned too until the upstream
  // answers with a TLS record: a ClientHello followed by plaintext to a plaintext listener
  // (which never answers in TLS) stays under the scanner; once both ends speak TLS the bytes
  // are ciphertext, and the tunnel goes to the kernel relay.
  const guarded = (first: Buffer, tls: boolean): void => {
    mode = 'js';
    const guard = c.opts.guard as PlaintextGuard;
    const scanner = guard.stream();
    // A tail that is only the start of the placeholders' public prefix goes on after a pause
    // (lib/secrets/placeholder.ts StreamScanner.release): a stream waiting for an answer must not
    // wait for ever on a last byte that happened to be `s`.
    let releaseTimer: NodeJS.Timeout | undefined;
    const stopRelease = () => {
      clearTimeout(releaseTimer);
      releaseTimer = undefined;
    };
    const releaseLater = () => {
      stopRelease();
      if (scanner.releasable === 0) return;
      releaseTimer = setTimeout(() => {
        releaseTimer = undefined;
        if (denial || error || client.destroyed || upstream.destroyed) return;
        const rest = scanner.release();
        bytesUp += rest.length;
        if (rest.length > 0 && !upstream.write(rest)) overBudget(upstream);
      }, TAIL_RELEASE_MS);
      releaseTimer.unref();
    };
    client.once('close', stopRelease);
    const pass = (chunk: Buffer): boolean => {
      stopRelease();
      const { forward, match } = scanner.push(chunk);
      if (match) {
        denial = `placeholder of secret ${match.name} sent in plaintext to ${d.host}:${d.port}`;
        guard.violation({ secret: match.name, host: d.host, port: d.port, via });
        if (bytesUp === 0 && !client.destroyed) client.end(refusal(denial));
        else abort();
        return false;
      }
      bytesUp += forward.length;
      releaseLater();
      if (forward.length === 0 || upstream.write(forward)) return true;
      overBudget(upstream);
      return false;
    };
    const onData = (chunk: Buffer): void => {
      if (denial || error) return;
      if (!pass(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    };
    const onEnd = (): void => {
      stopRelease();
      if (denial) return;
      const rest = scanner.end();
      bytesUp += rest.length;
      upstream.end(rest);
    };
    if (first.length > 0 && !pass(first)) return;
    client.on('data', onData);
    client.once('end', onEnd);
    if (!tls) return;
    let answered = false;
    watchDown = (chunk) => {
      watchDown = undefined;
      // A TLS record from the server: handshake (0x16) or alert (0x15), version 3.x.
      if (answered || !(chunk[0] === 0x16 || chunk[0] === 0x15) || chunk[1] !== 0x03) return;
      answered = true;
      // Not from inside the read callback: the hand-off stops reading this very socket.
      setImmediate(() => {
        if (denial || client.destroyed || upstream.destroyed) return;
        client.removeListener('data', onData);
        client.removeListener('end', onEnd);
        stopRelease();
        relayOut(scanner.end(), true);
      });
    };
  };
  // Once nothing more is to be inspected, the kernel relays (splice), or failing that, JS.
  // `resumed`: the tunnel was relayed in JS before (guarded); its upstream may be paused.
  const relayOut = (first: Buffer, resumed = false): void => {
    bytesUp += first.length;
    if (c.opts.kernelRelay === false) {
      relayInJs(first);
      if (resumed) upstream.resume();
      return;
    }
    let upHead = first;
    // Repeated after each wait for Node's writes to flush: a resume() issued before the
    // hand-off (the front-end's ready hook, setSink) restarts reading on the next tick, so
    // what was read meanwhile is collected again. The last pass stops reading and starts the
    // relay in one synchronous step, so nothing can be read in between.
    const inJs = (): void => {
      const stopped = mode === 'handing';
      relayInJs(upHead);
      if (stopped) {
        resumeReading(client);
        resumeReading(upstream);
      } else if (resumed) upstream.resume();
    };
    const handOver = (): void => {
      // An error, the idle timeout or close() while flushing: their close handlers record it.
      if (client.destroyed || upstream.destroyed || c.closed) return;
      if (!canHandOff(client) || !canHandOff(upstream)) {
        inJs();
        return;
      }
      mode = 'handing';
      const rest = stopReading(client);
      stopReading(upstream);
      if (rest.length > 0) {
        bytesUp += rest.length;
        upHead = Buffer.concat([upHead, rest]);
      }
      if (client.writableLength > 0 || upstream.writableLength > 0) {
        whenFlushed([client, upstream], handOver);
        return;
      }
      // The relay's pipes and the duplicates it holds come from this sandbox's and the host's
      // budgets, 1 MiB pipes only while the host's pipe budget has room for them; a relay that
      // does not fit stays in JavaScript, which needs neither.
      const pipes = hostBudget.pipePages;
      if (Date.now() < hostBudget.uidPipesFullUntil) {
        budget = uidPipesFullNote();
        inJs();
        return;
      }
      // Growable pipes get at most half the budget, so bulk tunnels leave room for many others.
      const growable = pipes.used + RELAY_GROWN_PIPE_PAGES <= pipes.limit / 2 && pipes.take(RELAY_GROWN_PIPE_PAGES);
      const pages = growable ? RELAY_GROWN_PIPE_PAGES : pipes.take(RELAY_PIPE_PAGES) ? RELAY_PIPE_PAGES : 0;
      if (pages === 0) {
        budget = `budget: ${pipes.refusal(RELAY_PIPE_PAGES) ?? pipes.name} reached; relayed in JavaScript`;
        inJs();
        return;
      }
      if (!c.fds.take(RELAY_FDS)) {
        budget = `budget: ${c.fds.refusal(RELAY_FDS) ?? c.fds.name} reached; relayed in JavaScript`;
        pipes.give(pages);
        inJs();
        return;
      }
      const release = (): void => {
        c.fds.give(RELAY_FDS);
        pipes.give(pages);
      };
      const started_ = startKernelRelay(client, upstream, upHead, idle, pages === RELAY_GROWN_PIPE_PAGES, uidPipeRoom(), (r) => {
        release();
        c.relays.delete(started_ as NativeRelay);
        bytesUp += r.bytesUp;
        bytesDown += r.bytesDown;
        error = error ?? r.error;
        forget();
        record();
        const waiters = c.handedOff.get(client) ?? [];
        c.handedOff.delete(client);
        for (const fn of waiters) fn();
      });
      if (typeof started_ === 'string') {
        // e.g. EMFILE: the sockets are untouched; read them again and relay here. ENOBUFS: the
        // caller's uid is near pipe-user-pages-soft (its other processes' pipes come first).
        if (started_ === 'ENOBUFS') {
          budget = uidPipesFullNote();
          hostBudget.uidPipesFullUntil = Date.now() + 1000;
        }
        release();
        inJs();
        return;
      }
      relay = started_;
      c.relays.add(relay);
      c.handedOff.set(client, []);
      mode = 'kernel';
    };
    handOver();
  };
  // A TLS record (0x16) is opaque: relayed as is. Anything else is plaintext for the guard.
  const route = (first: Buffer): void => (c.opts.guard ? guarded(first, first[0] === 0x16) : relayOut(first));
  const startUp = (first: Buffer): void => {
    if (!c.opts.guard || first.length > 0) route(first);
    else client.once('data', route);
  };
  if (!inspect || !d.isName) {
    startUp(head);
    return;
  }
  // Hold the client's bytes until we know what they are: the SNI of a ClientHello or the Host of
  // a request must name the host the tunnel was opened for (no domain fronting).
  let pending = head;
  const onData = c.fenced(client, via, (chunk: Buffer): void => {
    pending = Buffer.concat([pending, chunk]);
    check();
  });
  // A first message still incomplete limits.headersTimeout after its first byte (a client that
  // sends an upper-case word and a space and then waits, a ClientHello or head sent slowly) is
  // refused then, not left to the idle timeout. Passing it unread would let a slow head past the
  // Host check. From the first byte: a server-first protocol's client says nothing for a while.
  let deadline: NodeJS.Timeout | undefined;
  client.once('close', () => clearTimeout(deadline));
  const check = (): void => {
    const r = sniff(pending, c.limits.maxHeaderSize);
    if (r.kind === 'need-more') {
      if (pending.length > 0 && deadline === undefined) {
        deadline = setTimeout(() => {
          if (denial || client.destroyed) return;
          client.removeListener('data', onData);
          denial = `refused: the first ${pending.length} bytes inside the tunnel to ${d.host} are not yet a whole TLS ClientHello or HTTP head after ${c.limits.headersTimeout} ms`;
          abort();
        }, c.limits.headersTimeout);
        deadline.unref();
      }
      return;
    }
    clearTimeout(deadline);
    client.removeListener('data', onData);
    const mismatch = c.checkAgreement(r, d.host);
    if (mismatch) {
      denial = mismatch;
      abort();
      return;
    }
    startUp(pending);
  };
  client.on('data', onData);
  if (pending.length > 0) check();
}

/** A 403 for a refused plaintext stream, when nothing of it has been forwarded yet. */
function refusal(rule: string): string {
  const body = `stockade: ${rule}\n`;
  return `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Stockade-Rule: ${rule.replace(/[^\x20-\x7e]/g, '?')}\r\nConnection: close\r\n\r\n${body}`;
}
