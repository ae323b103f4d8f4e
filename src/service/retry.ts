/**
 * Retry policy and budget. A request is retried on another backend only
 * when its error (or the status it was answered) is one of the conditions
 * of `retries.on`, nothing has reached the client, its method is in the
 * list (or it carries an Idempotency-Key and `idempotencyKey` is on), its
 * body can be replayed, and the budget allows: retries
 * may add at most `budget` to the requests of the last ten seconds (with a
 * floor of `minPerSecond`), so a failing cluster is not hammered by its own
 * retries (Envoy's retry budget).
 */
import type { ErrorCode } from '../core/errors.js';
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

/** RetryReason names why an attempt was retried: an error condition, or the status code that was answered. */
export type RetryReason = 'connect-failure' | 'reset' | 'timeout' | `${number}`;

/** ERROR_CONDITIONS: the `retries.on` condition each retryable upstream error belongs to. */
const ERROR_CONDITIONS: Partial<Record<ErrorCode, 'connect-failure' | 'reset' | 'timeout'>> = {
  FULCRUM_ERR_CONNECT_REFUSED: 'connect-failure',
  FULCRUM_ERR_CONNECT_FAILED: 'connect-failure',
  FULCRUM_ERR_CONNECT_TIMEOUT: 'connect-failure',
  FULCRUM_ERR_UPSTREAM_TLS: 'connect-failure',
  FULCRUM_ERR_UPSTREAM_RESET: 'reset',
  FULCRUM_ERR_RESPONSE_TIMEOUT: 'timeout',
};

/** STATUS_REASONS: the reason strings of status retries, made once rather than per retry. */
const STATUS_REASONS: readonly RetryReason[] = Array.from({ length: 600 }, (_, code) => String(code) as RetryReason);

export class RetryPolicy {
  readonly attempts: number;
  readonly methods: ReadonlySet<string>;
  readonly maxBodySize: number;
  readonly budget: RetryBudget;
  /** idempotencyKey: a request with an Idempotency-Key header may be retried whatever its method. */
  readonly idempotencyKey: boolean;
  /** retriesStatus: some status codes are retried (the exchange looks at a response head only then). */
  readonly retriesStatus: boolean;
  /** perTryTimeout: ms one attempt may take to its response head; 0 for none. */
  readonly perTryTimeout: number;
  /** backoffBase, backoffMax: the full-jitter back-off between attempts, in ms; 0 for none. */
  readonly backoffBase: number;
  readonly backoffMax: number;

  readonly #config: RetriesConfig;
  readonly #errorConditions: ReadonlySet<string>;
  /** #statuses[code] is 1 for the status codes `on` lists; null when it lists none. */
  readonly #statuses: Uint8Array | null;

  /** budget: share another policy's budget (a route's overrides count against its service's budget). */
  constructor(config: RetriesConfig, budget?: RetryBudget) {
    this.#config = config;
    this.attempts = config.attempts;
    this.methods = new Set(config.methods);
    this.maxBodySize = config.maxBodySize;
    this.budget = budget ?? new RetryBudget(config.budget, config.minPerSecond);
    this.idempotencyKey = config.idempotencyKey;
    this.perTryTimeout = config.perTryTimeout ?? 0;
    this.backoffBase = config.backoff?.base ?? 0;
    this.backoffMax = config.backoff?.max ?? 0;
    const errors = new Set<string>();
    let statuses: Uint8Array | null = null;
    for (const condition of config.on) {
      if (typeof condition === 'string') {
        errors.add(condition);
        continue;
      }
      statuses ??= new Uint8Array(600);
      statuses.fill(1, condition[0], condition[1] + 1);
    }
    this.#errorConditions = errors;
    this.#statuses = statuses;
    this.retriesStatus = statuses !== null;
  }

  /** errorReason: the condition a retryable error falls under when `on` lists it, else null (not retried). */
  errorReason(code: ErrorCode): RetryReason | null {
    const condition = ERROR_CONDITIONS[code];
    return condition !== undefined && this.#errorConditions.has(condition) ? condition : null;
  }

  /** statusReason: the reason for retrying a response of this status when `on` lists it, else null. */
  statusReason(status: number): RetryReason | null {
    const statuses = this.#statuses;
    return statuses !== null && status < 600 && statuses[status] === 1 ? STATUS_REASONS[status]! : null;
  }

  /**
   * backoffDelay: the wait before retry number `retry` (1 for the first):
   * full jitter, a uniform draw from 0 to min(max, base * 2^(retry - 1)),
   * so that clients retrying after the same failure spread out.
   */
  backoffDelay(retry: number, random: () => number = Math.random): number {
    if (this.backoffMax === 0) return 0;
    const ceiling = Math.min(this.backoffMax, this.backoffBase * 2 ** (retry - 1));
    return Math.floor(random() * ceiling);
  }

  /** with is this policy with some settings overridden, spending from the same budget. */
  with(overrides: Partial<RetriesConfig>): RetryPolicy {
    return new RetryPolicy({ ...this.#config, ...overrides }, this.budget);
  }

  /** methodAllows: may requests with this method be retried at all? */
  methodAllows(method: string): boolean {
    return this.attempts > 0 && this.methods.has(method);
  }

  /**
   * requestAllows: may this request be retried: its method is listed, or
   * `idempotencyKey` is on and it carries an Idempotency-Key header (the
   * header is looked for only then).
   */
  requestAllows(method: string, rawHeaders: readonly string[]): boolean {
    if (this.attempts === 0) return false;
    if (this.methods.has(method)) return true;
    return this.idempotencyKey && hasIdempotencyKey(rawHeaders);
  }
}

/** hasIdempotencyKey: the request carries a non-empty Idempotency-Key header. */
export function hasIdempotencyKey(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 15 && name.toLowerCase() === 'idempotency-key' && raw[i + 1]!.trim() !== '') return true;
  }
  return false;
}
