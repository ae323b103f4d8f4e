/**
 * The listeners' one clock for slow clients: a single coarse interval
 * (every SWEEP_MS, unref'd) that visits the registered watchers, each of
 * which checks its own connections against their deadlines. A request
 * costs no timer of its own: a watcher keeps start times (numbers it
 * already has) and the sweep compares them with the time, so a deadline is
 * enforced at most SWEEP_MS late, and the hot path pays nothing.
 *
 * The interval runs only while some watcher is registered, so an idle
 * process (or a test that closed its balancer) has no timer at all.
 */

/** SWEEP_MS: how often deadlines are checked, and so how late one may be enforced. */
export const SWEEP_MS = 250;

/** Swept is a watcher: the sweep calls it with the current time (Date.now()). */
export interface Swept {
  sweep(now: number): void;
}

const watchers = new Set<Swept>();
let timer: NodeJS.Timeout | null = null;

function sweepAll(): void {
  const now = Date.now();
  for (const w of watchers) {
    try {
      w.sweep(now);
    } catch (err) {
      // One watcher's failure must not stop the others' deadlines.
      process.emitWarning(err as Error);
    }
  }
}

/** register adds a watcher to the shared sweep (starting the interval if it was stopped). */
export function register(w: Swept): void {
  watchers.add(w);
  if (timer === null) {
    timer = setInterval(sweepAll, SWEEP_MS);
    timer.unref();
  }
}

/** unregister removes a watcher; the interval stops with the last one. */
export function unregister(w: Swept): void {
  watchers.delete(w);
  if (watchers.size === 0 && timer !== null) {
    clearInterval(timer);
    timer = null;
  }
}
