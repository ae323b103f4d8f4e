/**
 * BackendSharing makes a run-time backend change (add, remove, weight,
 * state) made on one instance through the admin API reach every instance,
 * and survive restarts. Each change is merged into an override per backend
 * URL, stored and published; peers apply it through `balancer.ops` with
 * origin "remote", so that it is not published again. Discovery changes
 * are not shared: discovery runs on every instance.
 *
 * Every round of the sync loop, the stored overrides and the ones known
 * here are merged, the later change winning: a restarted instance
 * re-applies the run-time changes over its config, and a change made while
 * the store was unavailable is stored once it is back.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendOp, OpEvent } from '../backends/ops.js';
import { Reason } from '../backends/reasons.js';
import type { BackendConfig } from '../config/schema.js';
import type { BalancerHost } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { findByUrl } from './health-share.js';
import type { BackendOverride, SharedBackendState, StateStore, Unsubscribe } from './store.js';

export class BackendSharing {
  /** known: the latest override per backend URL, made here or received. */
  readonly #known = new Map<string, BackendOverride>();
  #unsubscribe: Unsubscribe | null = null;
  readonly #onOp = (event: OpEvent): void => this.#local(event);

  constructor(private readonly balancer: BalancerHost, private readonly store: StateStore, private readonly log: Logger) {}

  install(): void {
    this.balancer.ops.on('op', this.#onOp);
    this.#unsubscribe = this.store.onBackend((o) => this.#received(o));
    // A reload rebuilds the backend set from the file: the shared run-time changes are applied over it again.
    this.balancer.addHook('reload', () => {
      if (this.#unsubscribe === null) return;
      for (const o of this.#known.values()) {
        try {
          this.#apply(o);
        } catch (err) {
          this.log.warn({ backend: o.url, err: (err as Error).message }, 'could not re-apply a run-time backend change after reload');
        }
      }
    });
  }

  uninstall(): void {
    this.balancer.ops.off('op', this.#onOp);
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /**
   * reconcile merges the stored overrides (read by the sync loop every
   * round) with the known ones: a later stored change is applied here (one
   * whose message was missed while reconnecting), a later known one is
   * stored (one made while the store was away, or lost with a Redis restart).
   */
  reconcile(storedList: readonly BackendOverride[]): void {
    const stored = new Map(storedList.map((o) => [o.url, o]));
    for (const o of stored.values()) this.#received(o);
    for (const [url, o] of this.#known) {
      const s = stored.get(url);
      if (s === undefined || later(o, s)) this.#send(o);
    }
  }

  #local(event: OpEvent): void {
    if (event.origin !== 'admin') return;
    const url = opUrl(event.op);
    if (url === undefined) return;
    const override = merge(this.#known.get(url), event.op, url, this.store.instanceId);
    this.#known.set(url, override);
    this.#send(override);
  }

  #send(o: BackendOverride): void {
    // When the store is unavailable (or this fails), reconcile() sends it at the first round after it is back.
    if (this.store.state !== 'ready') return;
    this.store.publishBackend(o).catch(() => undefined);
  }

  #received(o: BackendOverride): void {
    const known = this.#known.get(o.url);
    if (known !== undefined && !later(o, known)) return;
    this.#known.set(o.url, o);
    try {
      this.#apply(o);
    } catch (err) {
      this.log.warn({ backend: o.url, from: o.by, err: (err as Error).message }, 'could not apply a backend change from another instance');
    }
  }

  #apply(o: BackendOverride): void {
    const ops = this.balancer.ops;
    const actor = `instance ${o.by}`;
    let backend = findByUrl(this.balancer, o.url);
    if (!o.present) {
      if (backend !== undefined) {
        ops.remove(backend.id, o.drain, 'remote', actor);
        this.log.info({ backend: o.url, from: o.by }, 'backend removed by another instance');
      }
      return;
    }
    if (backend === undefined) {
      if (o.config === null) return;
      backend = this.#add(o.config, actor);
      this.log.info({ backend: o.url, from: o.by }, 'backend added by another instance');
    }
    if (o.weight !== null && backend.weight !== o.weight) ops.setWeight(backend.id, o.weight, 'remote', actor);
    if (o.state !== null && stateOf(backend) !== o.state) ops.setState(backend.id, o.state, 'remote', actor);
  }

  /** add keeps the id the other instance gave, unless it is taken here by another URL. */
  #add(config: Readonly<Record<string, unknown>>, actor: string): Backend {
    const ops = this.balancer.ops;
    const id = config.id;
    if (typeof id === 'string' && this.balancer.pool.get(id) !== undefined) {
      const { id: _taken, ...rest } = config;
      return ops.add(rest, 'remote', actor);
    }
    return ops.add(config, 'remote', actor);
  }
}

/** later orders two changes to one backend: by time, then by instance id so that every instance agrees. */
function later(a: BackendOverride, b: BackendOverride): boolean {
  return a.at !== b.at ? a.at > b.at : a.by > b.by;
}

function opUrl(op: BackendOp): string | undefined {
  try {
    return new URL(op.kind === 'add' ? op.config.url : op.url).href;
  } catch {
    return undefined;
  }
}

/** merge folds one op into the override of its backend. */
function merge(previous: BackendOverride | undefined, op: BackendOp, url: string, by: string): BackendOverride {
  const at = Date.now();
  const base: BackendOverride = previous?.present === true
    ? previous
    : { url, present: true, config: previous?.config ?? null, weight: null, state: null, drain: false, at, by };
  switch (op.kind) {
    case 'add':
      return { url, present: true, config: backendInput(op.config), weight: null, state: null, drain: false, at, by };
    case 'remove':
      return { url, present: false, config: previous?.config ?? null, weight: null, state: null, drain: op.drain, at, by };
    case 'weight':
      return { ...base, weight: op.weight, drain: false, at, by };
    case 'state':
      return { ...base, state: op.state, drain: false, at, by };
  }
}

/**
 * backendInput turns a validated backend config back into input form:
 * durations are milliseconds once validated, and a bare number would be
 * read as seconds when the receiving instance validates it again.
 */
export function backendInput(config: BackendConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  if (config.timeouts !== undefined) {
    out.timeouts = Object.fromEntries(Object.entries(config.timeouts).map(([k, ms]) => [k, typeof ms === 'number' ? `${ms}ms` : ms]));
  }
  return out;
}

function stateOf(b: Backend): SharedBackendState {
  const s = b.state.reasons;
  return (s & Reason.DISABLED) !== 0 ? 'disabled' : (s & Reason.DRAINING) !== 0 ? 'draining' : 'enabled';
}
