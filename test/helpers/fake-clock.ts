/**
 * FakeClock is a Clock (src/health/clock.ts) whose time moves only when a
 * test says so: advance(ms) runs the timers that fall due, in time order
 * (same time: in the order they were set), each at its own time, and lets
 * the promises they started settle before the next one, as real time would.
 */
import type { Clock, TimerHandle } from '../../src/health/clock.js';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** settle lets every pending promise callback run (one turn of the event loop, no timer involved). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** pending is the number of timers set and neither fired nor cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** dueIn lists the pending timers as delays from now, soonest first. */
  dueIn(): number[] {
    return [...this.#timers.values()].map((t) => t.at - this.#now).sort((a, b) => a - b);
  }

  /**
   * advance moves time `ms` forward, running every timer due by then
   * (including those set by the callbacks it runs), and settles promises
   * after each one and at the end.
   */
  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#next(until);
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = next.at;
      next.fn();
      await settle();
    }
    this.#now = until;
  }

  #next(until: number): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers.values()) {
      if (t.at > until) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.id < best.id)) best = t;
    }
    return best;
  }
}
