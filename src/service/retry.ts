/**
 * Retry policy and budget. A request is retried on another backend only
 * when its error is retryable, nothing has reached the client, its method
 * is in the list, its body can be replayed, and the budget allows: retries
 * may add at most `budget` to the requests of the last ten seconds (with a
 * floor of `minPerSecond`), so a failing cluster is not hammered by its own
 * retries (Envoy's retry budget).
 */
import type { RetriesConfig } from '../config/schema.js';

const WINDOW_SECONDS = 10;

export class RetryBudget {
  readonly #requests = new Float64Array(WINDOW_SECONDS);
  readonly #retries = new Float64Array(WINDOW_SECONDS);
  #second = 0;

  constructor(private readonly fraction: number, private readonly minPerSecond: number, private readonly now: () => number = Date.now) {}

  #advance(): number {
    const second = Math.floor(this.now() / 1000);
    if (second !== this.#second) {
      const gap = Math.min(second - this.#second, WINDOW_SECONDS);
      for (let i = 1; i <= gap; i++) {
        const slot = (this.#second + i) % WINDOW_SECONDS;
        this.#requests[slot] = 0;
        this.#retries[slot] = 0;
      }
      this.#second = second;
    }
    return second % WINDOW_SECONDS;
  }

  recordRequest(): void {
    this.#requests[this.#advance()]!++;
  }

  /** tryAcquire takes one retry from the budget, or says no. */
  tryAcquire(): boolean {
    const slot = this.#advance();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      requests += this.#requests[i]!;
      retries += this.#retries[i]!;
    }
    const allowed = Math.max(this.minPerSecond * WINDOW_SECONDS, requests * this.fraction);
    if (retries + 1 > allowed) return false;
    this.#retries[slot]!++;
    return true;
  }
}

export class RetryPolicy {
  readonly attempts: number;
  readonly methods: ReadonlySet<string>;
  readonly maxBodySize: number;
  readonly budget: RetryBudget;

  readonly #config: RetriesConfig;

  /** budget: share another policy's budget (a route's overrides count against its service's budget). */
  constructor(config: RetriesConfig, budget?: RetryBudget) {
    this.#config = config;
    this.attempts = config.attempts;
    this.methods = new Set(config.methods);
    this.maxBodySize = config.maxBodySize;
    this.budget = budget ?? new RetryBudget(config.budget, config.minPerSecond);
  }

  /** with is this policy with some settings overridden, spending from the same budget. */
  with(overrides: Partial<RetriesConfig>): RetryPolicy {
    return new RetryPolicy({ ...this.#config, ...overrides }, this.budget);
  }

  /** methodAllows: may requests with this method be retried at all? */
  methodAllows(method: string): boolean {
    return this.attempts > 0 && this.methods.has(method);
  }
}
