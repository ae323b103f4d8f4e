/**
 * StoreHealth follows the shared store's availability for the limiter:
 * every failed decision is counted, and an outage is logged once when it
 * begins and once when it ends, however many requests it touches.
 */
import type { Logger } from '../observe/log.js';

export class StoreHealth {
  available = true;
  /** errors counts decisions the store failed to make (error or timeout). */
  errors = 0;
  /** outages counts transitions from available to unavailable. */
  outages = 0;
  #since = 0;

  constructor(private readonly log: Logger, public onStoreError: 'allow' | 'deny') {}

  /** failed records a decision the store could not make. */
  failed(err: Error): void {
    this.errors++;
    this.down(err);
  }

  /** down marks the store unavailable (a lost connection, or a failed decision). */
  down(err: Error): void {
    if (!this.available) return;
    this.available = false;
    this.outages++;
    this.#since = Date.now();
    const then = this.onStoreError === 'allow' ? 'requests are allowed without limit' : 'requests are denied (503)';
    this.log.warn({ err: err.message }, `rate limit store unavailable: ${then} until it recovers`);
  }

  /** reset: a store that cannot fail (memory) took over. */
  reset(): void {
    this.available = true;
  }

  up(): void {
    if (this.available) return;
    this.available = true;
    this.log.info({ downMs: Date.now() - this.#since }, 'rate limit store recovered');
  }
}
