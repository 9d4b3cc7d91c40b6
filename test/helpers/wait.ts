// Waiting on a condition instead of sleeping: a test waits exactly as long as the thing it waits
// for takes, on a loaded CI machine as on an idle laptop, and says what it was waiting for when
// that never comes. The timeout is a bound against a hang, never an assertion about speed.

export interface WaitOptions {
  /** Give up after this long (ms). Default 10 s: far above any expected wait. */
  timeout?: number;
  /** What is awaited, for the error; a function is called when giving up (so it can show the state then). */
  what?: string | (() => string);
  /** Poll interval (ms). Default 10. */
  interval?: number;
}

/**
 * Resolves once `cond()` holds (polling; an async condition is awaited), or rejects naming what
 * was awaited. Also `waitFor(cond, what, timeoutMs)`.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  options: WaitOptions | string | (() => string) = {},
  timeoutMs?: number,
): Promise<void> {
  const o: WaitOptions = typeof options === 'object' ? options : { what: options, timeout: timeoutMs };
  const timeout = o.timeout ?? 10_000;
  const end = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) {
      const what = typeof o.what === 'function' ? o.what() : (o.what ?? 'a condition');
      throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, o.interval ?? 10));
  }
}
