/**
 * Clock is the time source and the timers of the health components, injected
 * so that tests drive time by hand (test/helpers/fake-clock.ts). The real one
 * unrefs its timers: health checks and ejections never keep the process alive.
 */

/** TimerHandle is whatever a clock's setTimeout returns; only that clock's clearTimeout reads it. */
export type TimerHandle = unknown;

export interface Clock {
  /** now is the time in epoch milliseconds. */
  now(): number;
  /** setTimeout calls `fn` once, `ms` milliseconds from now. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** clearTimeout cancels a timer that has not fired; a fired or cleared one is ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** realClock: Date.now and Node's timers, unref'ed. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
