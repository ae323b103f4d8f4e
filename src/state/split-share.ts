/**
 * SplitSharing makes a split's run-time weights (PATCH /admin/routes/{name})
 * reach every instance sharing the store, and survive restarts: each
 * change is stored under `value:split:<route>` and every instance reads the
 * split routes' keys every POLL_INTERVAL, applying a stored change later
 * than the one it knows (by time, then instance id, so that every instance
 * agrees). Polling a handful of keys costs the store a few reads a second
 * and needs no channel of its own; a change made while the store was away
 * is written once it is back.
 */
import type { BalancerHost } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import type { SplitOrigin, SplitOverride } from '../routing/split-control.js';
import type { StateStore } from './store.js';

/** POLL_INTERVAL: how often the stored weights are read; well within the second a canary step may take to apply everywhere. */
export const POLL_INTERVAL = 250;

const KEY = 'split:';

export class SplitSharing {
  /** #known: the latest change per route, made here or read, with the instance that made it. */
  readonly #known = new Map<string, SplitOverride>();
  /** #unsent: routes whose change made here is not stored yet (the store was away, or the write failed). */
  readonly #unsent = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #polling = false;

  constructor(private readonly balancer: BalancerHost, private readonly store: StateStore, private readonly log: Logger, private readonly interval = POLL_INTERVAL) {}

  install(): void {
    this.#unsubscribe = this.balancer.splits.on((o, origin) => this.#local(o, origin));
    this.#timer = setInterval(() => void this.poll(), this.interval);
    this.#timer.unref();
    void this.poll();
  }

  uninstall(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** poll reads every split route's stored weights and applies the later ones; it stores what is unsent. */
  async poll(): Promise<void> {
    if (this.#polling || this.store.state !== 'ready') return;
    this.#polling = true;
    try {
      for (const name of this.#unsent) await this.#write(this.#known.get(name)!);
      for (const route of this.balancer.routes.routes) {
        if (route.split === null) continue;
        const text = await this.store.getValue(KEY + route.name);
        const stored = text === null ? null : parse(text);
        if (stored === null || stored.route !== route.name) continue;
        const known = this.#known.get(route.name);
        if (known !== undefined && !later(stored, known)) continue;
        this.#known.set(route.name, stored);
        try {
          this.balancer.splits.set(stored, 'remote');
          this.log.info({ route: route.name, split: stored.split, from: stored.by, actor: stored.actor }, 'split weights changed by another instance');
        } catch (err) {
          this.log.warn({ route: route.name, from: stored.by, err: (err as Error).message }, 'could not apply split weights from another instance');
        }
      }
    } catch (err) {
      // The store failed mid-round: the next round tries again.
      this.log.debug({ err: (err as Error).message }, 'split weights: store read failed');
    } finally {
      this.#polling = false;
    }
  }

  #local(o: SplitOverride, origin: SplitOrigin): void {
    if (origin !== 'admin') return;
    const mine: SplitOverride = { ...o, by: this.store.instanceId };
    this.#known.set(o.route, mine);
    this.#unsent.add(o.route);
    if (this.store.state === 'ready') void this.#write(mine).catch(() => undefined);
  }

  async #write(o: SplitOverride): Promise<void> {
    await this.store.setValue(KEY + o.route, JSON.stringify(o));
    // A later change may have been made while this one was written: only that one stays unsent.
    if (this.#known.get(o.route) === o) this.#unsent.delete(o.route);
  }
}

/** later orders two changes to one route: by time, then by instance id. */
function later(a: SplitOverride, b: SplitOverride): boolean {
  return a.at !== b.at ? a.at > b.at : a.by > b.by;
}

/** parse reads a stored change, or null when it is not one (another version wrote it, or it is damaged). */
function parse(text: string): SplitOverride | null {
  try {
    const v = JSON.parse(text) as Partial<SplitOverride>;
    if (typeof v.route !== 'string' || typeof v.at !== 'number' || typeof v.by !== 'string' || !Array.isArray(v.split)) return null;
    const split = v.split.filter((s): s is { service: string; weight: number } => typeof s?.service === 'string' && Number.isInteger(s?.weight) && s.weight >= 0);
    if (split.length !== v.split.length || split.length === 0) return null;
    return { route: v.route, split, at: v.at, by: v.by, actor: typeof v.actor === 'string' ? v.actor : 'unknown' };
  } catch {
    return null;
  }
}
