/**
 * MemoryStore keeps one limit's per-client state in this process: a Map
 * lookup and a few integer operations per request, no allocation except
 * for a client seen for the first time.
 *
 * Memory is bounded two ways:
 * - idle keys (whose allowance is full again, so that they decide exactly
 *   as a fresh key would) are swept periodically; dropping them changes no
 *   decision;
 * - a hard cap, `maxKeys`: when a new client arrives at the cap, idle keys
 *   are swept and, if that frees too little, the oldest keys are forgotten
 *   (those clients start again with a full allowance). Each such pass frees
 *   an eighth of the cap, so its cost is spread over many new clients and a
 *   flood of distinct addresses costs O(1) per request on average.
 */
import type { Clock, Decision, LimitAlgorithm } from './types.js';

/** SWEEP_BOUNDS_MS: the periodic sweep runs every idle period, within these bounds. */
const SWEEP_MIN_MS = 1_000;
const SWEEP_MAX_MS = 60_000;

export class MemoryStore<S> {
  readonly #states = new Map<string, S>();
  readonly #algorithm: LimitAlgorithm<S>;
  readonly #maxKeys: number;
  /** #lowWater: the size a pass at the cap brings the map down to. */
  readonly #lowWater: number;
  #timer: NodeJS.Timeout | null = null;
  /** evicted counts keys forgotten before they were idle (cap pressure). */
  evicted = 0;

  constructor(algorithm: LimitAlgorithm<S>, maxKeys: number) {
    this.#algorithm = algorithm;
    this.#maxKeys = maxKeys;
    this.#lowWater = maxKeys - Math.ceil(maxKeys / 8);
  }

  get size(): number {
    return this.#states.size;
  }

  decide(key: string, now: number, out: Decision): void {
    let state = this.#states.get(key);
    if (state === undefined) {
      if (this.#states.size >= this.#maxKeys) this.#makeRoom(now);
      state = this.#algorithm.fresh(now);
      this.#states.set(key, state);
    }
    this.#algorithm.decide(state, now, out);
  }

  /** sweep drops the idle keys; it returns how many. */
  sweep(now: number): number {
    const before = this.#states.size;
    for (const [key, state] of this.#states) if (this.#algorithm.idle(state, now)) this.#states.delete(key);
    return before - this.#states.size;
  }

  #makeRoom(now: number): void {
    this.sweep(now);
    if (this.#states.size <= this.#lowWater) return;
    // Map iteration follows insertion order: the first keys are the oldest.
    for (const key of this.#states.keys()) {
      this.#states.delete(key);
      this.evicted++;
      if (this.#states.size <= this.#lowWater) break;
    }
  }

  /** startSweeping sweeps idle keys in the background (the timer does not keep the process alive). */
  startSweeping(clock: Clock): void {
    if (this.#timer !== null) return;
    const every = Math.min(SWEEP_MAX_MS, Math.max(SWEEP_MIN_MS, this.#algorithm.idleAfterMs));
    this.#timer = setInterval(() => this.sweep(clock()), every);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#states.clear();
  }
}
