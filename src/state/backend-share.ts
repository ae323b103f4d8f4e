/**
 * BackendSharing makes a run-time backend change (add, remove, weight,
 * state) made on one instance through the admin API, to any service, reach
 * the same service on every instance, and survive restarts. Each change is
 * merged into an override per backend (service and URL: two services may
 * list the same URL, and stay apart), stored and published; peers apply it
 * through that service's ops with origin "remote", so that it is not
 * published again. A change to a service this instance does not have is
 * kept (a reload may add the service) but applied to nothing. Discovery
 * changes are not shared: discovery runs on every instance.
 *
 * Every round of the sync loop, the stored overrides and the ones known
 * here are merged, the later change winning: a restarted instance
 * re-applies the run-time changes over its config, and a change made while
 * the store was unavailable is stored once it is back.
 *
 * Services come and go with reloads: the ops of every service are listened
 * to, those of services a reload creates too, and those of removed ones no
 * longer (see #listen).
 */
import type { Backend } from '../backends/backend.js';
import type { BackendOp, BackendOps, OpEvent } from '../backends/ops.js';
import { Reason } from '../backends/reasons.js';
import type { BackendConfig } from '../config/schema.js';
import type { BalancerHost, ServiceHandle } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { findByUrl } from './health-share.js';
import { backendKey, type BackendOverride, type SharedBackendState, type StateStore, type Unsubscribe } from './store.js';

/** Listened is one service's ops as listened to here, with the listener to remove. */
interface Listened {
  readonly ops: BackendOps;
  readonly listener: (event: OpEvent) => void;
}

export class BackendSharing {
  /** known: the latest override per backend (by backendKey), made here or received. */
  readonly #known = new Map<string, BackendOverride>();
  /** listened: the ops listened to, by service name. */
  readonly #listened = new Map<string, Listened>();
  #unsubscribe: Unsubscribe | null = null;
  #removeReloadHook: (() => void) | null = null;

  constructor(private readonly balancer: BalancerHost, private readonly store: StateStore, private readonly log: Logger) {}

  install(): void {
    this.#listen();
    this.#unsubscribe = this.store.onBackend((o) => this.#received(o));
    // A reload rebuilds each service's backend set from the file (and may add or remove services):
    // the shared run-time changes are applied over it again, to the services there are now.
    this.#removeReloadHook = this.balancer.addHook('reload', () => {
      if (this.#unsubscribe === null) return;
      this.#listen();
      for (const o of this.#known.values()) {
        try {
          this.#apply(o);
        } catch (err) {
          this.log.warn({ service: o.service, backend: o.url, err: (err as Error).message }, 'could not re-apply a run-time backend change after reload');
        }
      }
    });
  }

  uninstall(): void {
    for (const name of [...this.#listened.keys()]) this.#unlisten(name);
    this.#removeReloadHook?.();
    this.#removeReloadHook = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /** #listen listens to the ops of every service not listened to yet, and stops for services no longer there. */
  #listen(): void {
    const services = this.balancer.serviceNames().flatMap((name) => this.balancer.serviceHandle(name) ?? []);
    const current = new Map(services.map((s) => [s.name, s]));
    for (const [name, listened] of this.#listened) {
      if (current.get(name)?.ops !== listened.ops) this.#unlisten(name);
    }
    for (const service of services) {
      if (this.#listened.has(service.name)) continue;
      const name = service.name;
      const listener = (event: OpEvent): void => this.#local(name, event);
      service.ops.on('op', listener);
      this.#listened.set(name, { ops: service.ops, listener });
    }
  }

  #unlisten(name: string): void {
    const listened = this.#listened.get(name);
    if (listened === undefined) return;
    listened.ops.off('op', listened.listener);
    this.#listened.delete(name);
  }

  /**
   * reconcile merges the stored overrides (read by the sync loop every
   * round) with the known ones: a later stored change is applied here (one
   * whose message was missed while reconnecting), a later known one is
   * stored (one made while the store was away, or lost with a Redis restart).
   */
  reconcile(storedList: readonly BackendOverride[]): void {
    const stored = new Map(storedList.map((o) => [keyOf(o), o]));
    for (const o of stored.values()) this.#received(o);
    for (const [key, o] of this.#known) {
      const s = stored.get(key);
      if (s === undefined || later(o, s)) this.#send(o);
    }
  }

  #local(service: string, event: OpEvent): void {
    if (event.origin !== 'admin') return;
    const url = opUrl(event.op);
    if (url === undefined) return;
    const key = backendKey(service, url);
    const override = merge(this.#known.get(key), event.op, service, url, this.store.instanceId);
    this.#known.set(key, override);
    this.#send(override);
  }

  #send(o: BackendOverride): void {
    // When the store is unavailable (or this fails), reconcile() sends it at the first round after it is back.
    if (this.store.state !== 'ready') return;
    this.store.publishBackend(o).catch(() => undefined);
  }

  #received(o: BackendOverride): void {
    const key = keyOf(o);
    const known = this.#known.get(key);
    if (known !== undefined && !later(o, known)) return;
    this.#known.set(key, o);
    try {
      this.#apply(o);
    } catch (err) {
      this.log.warn({ service: o.service, backend: o.url, from: o.by, err: (err as Error).message }, 'could not apply a backend change from another instance');
    }
  }

  /** #apply makes the service's backend what the override says; a service this instance does not have is left alone. */
  #apply(o: BackendOverride): void {
    const service = this.balancer.serviceHandle(o.service);
    if (service === undefined) return;
    const ops = service.ops;
    const actor = `instance ${o.by}`;
    let backend = findByUrl(service.pool, o.url);
    if (!o.present) {
      if (backend !== undefined) {
        ops.remove(backend.id, o.drain, 'remote', actor);
        this.log.info({ service: o.service, backend: o.url, from: o.by }, 'backend removed by another instance');
      }
      return;
    }
    if (backend === undefined) {
      if (o.config === null) return;
      backend = add(service, o.config, actor);
      this.log.info({ service: o.service, backend: o.url, from: o.by }, 'backend added by another instance');
    }
    if (o.weight !== null && backend.weight !== o.weight) ops.setWeight(backend.id, o.weight, 'remote', actor);
    if (o.state !== null && stateOf(backend) !== o.state) ops.setState(backend.id, o.state, 'remote', actor);
  }
}

/** add keeps the id the other instance gave, unless it is taken in the service here by another URL. */
function add(service: ServiceHandle, config: Readonly<Record<string, unknown>>, actor: string): Backend {
  const id = config.id;
  if (typeof id === 'string' && service.pool.get(id) !== undefined) {
    const { id: _taken, ...rest } = config;
    return service.ops.add(rest, 'remote', actor);
  }
  return service.ops.add(config, 'remote', actor);
}

function keyOf(o: BackendOverride): string {
  return backendKey(o.service, o.url);
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
function merge(previous: BackendOverride | undefined, op: BackendOp, service: string, url: string, by: string): BackendOverride {
  const at = Date.now();
  const base: BackendOverride = previous?.present === true
    ? previous
    : { service, url, present: true, config: previous?.config ?? null, weight: null, state: null, drain: false, at, by };
  switch (op.kind) {
    case 'add':
      return { service, url, present: true, config: backendInput(op.config), weight: null, state: null, drain: false, at, by };
    case 'remove':
      return { service, url, present: false, config: previous?.config ?? null, weight: null, state: null, drain: op.drain, at, by };
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
