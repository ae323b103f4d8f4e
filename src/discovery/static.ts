/**
 * Static discovery: a service's configured `backends`, seen as one more
 * discovery source. It exists so that a service can treat every source
 * alike (static, DNS, Kubernetes: snapshots of specs, one code path),
 * instead of keeping its configured backends apart from discovered ones.
 *
 * The list never changes and never fails: start() reports it once and
 * waits for the signal.
 */
import { BackendPool } from '../backends/pool.js';
import type { BackendConfig } from '../config/schema.js';
import type { BackendSpec, DiscoverySource, SnapshotListener } from './source.js';

export class StaticSource implements DiscoverySource {
  readonly name = 'static';
  readonly target: string;
  readonly lastError: string | null = null;
  readonly #specs: readonly BackendSpec[];

  /** `backends` is the validated config's list (config.backends). */
  constructor(backends: readonly BackendConfig[]) {
    // The ids are those the balancer's pool gives these backends (the configured id, else b1, b2, ...):
    // the pool's own allocation, run on a pool of our own, so that the two can never disagree.
    const pool = new BackendPool();
    pool.replaceAll(backends);
    this.#specs = Object.freeze(pool.snapshot.map((b): BackendSpec => Object.freeze({ id: b.id, url: b.config.url, weight: b.weight, state: 'ready' })));
    this.target = `${this.#specs.length} backend${this.#specs.length === 1 ? '' : 's'}`;
  }

  async start(onSnapshot: SnapshotListener, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    onSnapshot(this.#specs);
    // The listener may have aborted; an abort event already fired would never come again.
    if (signal.aborted) return;
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
}
