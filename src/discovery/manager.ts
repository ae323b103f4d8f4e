/**
 * DiscoveryManager runs one service's discovery sources (a service may list
 * several: DNS names, Kubernetes services) and applies their snapshots to
 * that service's pool, through its BackendOps (origin "discovery").
 *
 * - Static `backends` and discovered ones form a union. Discovery never
 *   touches a backend it did not add, and skips an address already in the
 *   pool (a static backend with the same URL wins).
 * - A backend that stays keeps its Backend object: id, connections, health
 *   and counters. New ones are health-checked at once by the balancer.
 * - A backend that disappears, or that Kubernetes marks terminating, is
 *   drained, not cut: no new requests, removed when in-flight reaches 0.
 *   If it comes back before that, it is simply put back in rotation.
 */
import type { Backend } from '../backends/backend.js';
import { Reason } from '../backends/reasons.js';
import type { BackendConfig, DiscoveryConfig, FulcrumConfig } from '../config/schema.js';
import type { BalancerHost, ServiceHandle } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { DnsSource } from './dns.js';
import { KubernetesSource } from './kubernetes.js';
import type { BackendSpec, DiscoverySource } from './source.js';

type SourceKind = keyof DiscoveryConfig;

/**
 * A source is known by its place in the service's list and its kind
 * ("0.dns"), so that a source whose settings change on reload restarts in
 * place and inherits the backends of the one it replaces.
 */
type SourceKey = `${number}.${SourceKind}`;

/** CLOSE_WAIT_MS: how long close() waits for the sources to stop. */
const CLOSE_WAIT_MS = 2000;

interface Running {
  readonly source: DiscoverySource;
  /** configJson: the source's config, to tell on reload whether it must restart. */
  readonly configJson: string;
  readonly controller: AbortController;
  /** done settles when the source has stopped. */
  done: Promise<void>;
  /** owned: the backends this source added, by id, while they are in the pool. */
  readonly owned: Map<string, Backend>;
  /** drained: the ones it is draining itself (so that it may put them back). */
  readonly drained: Set<string>;
  lastSnapshot: number | null;
}

export interface ManagerDeps {
  readonly balancer: BalancerHost;
  readonly target: ServiceHandle;
  readonly log: Logger;
}

export class DiscoveryManager {
  readonly #balancer: BalancerHost;
  readonly #target: ServiceHandle;
  readonly #log: Logger;
  readonly #running = new Map<SourceKey, Running>();
  #closed = false;

  constructor(deps: ManagerDeps) {
    this.#balancer = deps.balancer;
    this.#target = deps.target;
    this.#log = deps.log.child({ service: deps.target.name });
  }

  /** configure starts, restarts or stops sources to match the service's list (at start and on reload). */
  configure(sources: readonly DiscoveryConfig[]): void {
    if (this.#closed) return;
    const wanted = new Map<SourceKey, { kind: SourceKind; config: DiscoveryConfig }>();
    sources.forEach((config, i) => {
      for (const kind of ['dns', 'kubernetes'] as const) if (config[kind] !== undefined) wanted.set(`${i}.${kind}`, { kind, config });
    });
    for (const [key, running] of this.#running) {
      if (!wanted.has(key)) this.#stop(key, running, true);
    }
    for (const [key, { kind, config }] of wanted) {
      const running = this.#running.get(key);
      const json = JSON.stringify(config[kind]);
      if (running !== undefined && running.configJson === json) continue;
      if (running !== undefined) this.#stop(key, running, false);
      this.#start(key, kind, config, json, running);
    }
  }

  #start(key: SourceKey, kind: SourceKind, config: DiscoveryConfig, configJson: string, previous: Running | undefined): void {
    const source: DiscoverySource = kind === 'dns' ? new DnsSource(config.dns!, this.#log) : new KubernetesSource(config.kubernetes!, this.#log);
    const controller = new AbortController();
    // A restarted source (its config changed) inherits the backends of the old one: its first snapshot decides what stays.
    const running: Running = {
      source, configJson, controller, owned: previous?.owned ?? new Map(), drained: previous?.drained ?? new Set(), lastSnapshot: null,
      done: Promise.resolve(),
    };
    const onSnapshot = (specs: readonly BackendSpec[]): void => {
      // A stopped source may still be finishing a lookup; what it finds is no longer wanted.
      if (!controller.signal.aborted) this.#apply(running, specs);
    };
    running.done = source.start(onSnapshot, controller.signal)
      .catch((err: unknown) => this.#log.error({ err, discovery: source.name }, 'discovery source stopped unexpectedly'));
    this.#running.set(key, running);
    this.#log.info({ discovery: source.name, target: source.target }, 'discovery started');
  }

  #stop(key: SourceKey, running: Running, drainAll: boolean): void {
    running.controller.abort();
    this.#running.delete(key);
    if (drainAll) this.#apply(running, []);
  }

  /** apply makes the pool match one source's snapshot, changing only what differs. */
  #apply(running: Running, specs: readonly BackendSpec[]): void {
    if (this.#closed) return;
    running.lastSnapshot = Date.now();
    const { pool, ops } = this.#target;
    const actor = `${running.source.name} ${running.source.target}`;
    // Forget backends that left the pool (drained and removed, or removed by the admin API).
    for (const [id, backend] of running.owned) {
      if (pool.get(id) !== backend) {
        running.owned.delete(id);
        running.drained.delete(id);
      }
    }
    // Another source of the same service may list an address too: the first to add it owns it (findByUrl below).
    const staticUrls = new Set(this.#target.config().backends.map((b) => new URL(b.url).href));
    const ready = new Map<string, BackendSpec>();
    for (const spec of specs) if (spec.state === 'ready' && !staticUrls.has(new URL(spec.url).href)) ready.set(spec.id, spec);
    const added: string[] = [];
    const drained: string[] = [];
    const restored: string[] = [];

    for (const [id, backend] of running.owned) {
      if (ready.has(id) || running.drained.has(id)) continue;
      if (staticUrls.has(backend.url.href)) {
        // The config now lists this address itself: it is a static backend from here on.
        running.owned.delete(id);
        continue;
      }
      ops.remove(id, true, 'discovery', actor);
      if (pool.get(id) === backend) {
        // Requests in flight: it stays, out of rotation, until the last one ends.
        running.drained.add(id);
        this.#balancer.recordEvent(backend, `draining: no longer listed by ${actor}`);
      } else {
        running.owned.delete(id);
      }
      drained.push(id);
    }

    for (const spec of ready.values()) {
      const backend = running.owned.get(spec.id);
      if (backend !== undefined) {
        if (running.drained.delete(spec.id)) {
          backend.removeWhenDrained = false;
          if (backend.setReason(Reason.DRAINING, false)) this.#balancer.recordEvent(backend, `listed again by ${actor}`);
          restored.push(spec.id);
        }
        if (backend.weight !== spec.weight) ops.setWeight(spec.id, spec.weight, 'discovery', actor);
        continue;
      }
      const same = pool.get(spec.id);
      if (same !== undefined && same.url.href === new URL(spec.url).href) {
        // Ids are derived from the address, so this is the same endpoint, added before this source
        // owned it (by a peer through the shared store, or by a source restarted on reload): adopt it.
        running.owned.set(spec.id, same);
        continue;
      }
      if (same !== undefined || pool.findByUrl(spec.url) !== undefined) continue;
      const config: BackendConfig = { id: spec.id, url: spec.url, weight: spec.weight, healthy: true };
      try {
        running.owned.set(spec.id, ops.add(config, 'discovery', actor));
        added.push(spec.id);
      } catch (err) {
        // One unusable endpoint (say, a host name that is not a valid URL host) must not hold up the others.
        this.#log.warn({ discovery: running.source.name, backend: spec.id, url: spec.url, err: (err as Error).message }, 'discovery: endpoint skipped');
      }
    }

    if (added.length > 0 || drained.length > 0 || restored.length > 0) {
      this.#log.info({ discovery: running.source.name, target: running.source.target, added, drained, restored, backends: ready.size }, 'discovery: backends changed');
    }
  }

  /**
   * retained lists the discovered backends still in the pool as configs,
   * so that a reload, which rebuilds the pool from the config, keeps them.
   */
  retained(configured: readonly BackendConfig[]): BackendConfig[] {
    const staticUrls = new Set(configured.map((b) => new URL(b.url).href));
    const out: BackendConfig[] = [];
    for (const running of this.#running.values()) {
      for (const backend of running.owned.values()) {
        if (this.#target.pool.get(backend.id) === backend && !staticUrls.has(backend.url.href)) out.push(backend.config);
      }
    }
    return out;
  }

  /** status is the `discovery` part of /status. */
  status(): Record<string, unknown>[] {
    return [...this.#running.values()].map((r) => ({
      service: this.#target.name,
      source: r.source.name,
      target: r.source.target,
      backends: [...r.owned.keys()].filter((id) => !r.drained.has(id)),
      draining: [...r.drained],
      lastSnapshot: r.lastSnapshot === null ? null : new Date(r.lastSnapshot).toISOString(),
      lastError: r.source.lastError,
    }));
  }

  /** close stops every source; the backends stay as they are while the balancer shuts down. */
  async close(): Promise<void> {
    this.#closed = true;
    const running = [...this.#running.values()];
    this.#running.clear();
    for (const r of running) r.controller.abort();
    // Bounded: a request the client library cannot abort (a watch still connecting) must not hold up shutdown.
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS); });
    await Promise.race([Promise.all(running.map((r) => r.done)), limit]);
    clearTimeout(timer);
  }
}

/**
 * installDiscovery attaches discovery to a balancer: one manager per
 * service that lists sources, started now, re-read on reload (a service
 * that drops its sources drains what they added), stopped on close.
 */
export function installDiscovery(balancer: BalancerHost): void {
  const managers = new Map<string, DiscoveryManager>();
  let installed = false;
  const install = (): void => {
    installed = true;
    balancer.addComponent({
      name: 'discovery',
      retainedBackends: (service, configured) => managers.get(service)?.retained(configured) ?? [],
      status: (status) => { status.discovery = [...managers.values()].flatMap((m) => m.status()); },
      close: () => Promise.all([...managers.values()].map((m) => m.close())).then(() => undefined),
    });
  };
  const ensure = (config: FulcrumConfig): void => {
    for (const [name, manager] of managers) {
      const service = config.services[name];
      if (service !== undefined && (service.discovery?.length ?? 0) > 0) continue;
      // The service is gone (its backends went with it) or lists no source any more (drain what they added).
      if (service !== undefined) manager.configure([]);
      void manager.close();
      managers.delete(name);
    }
    for (const [name, service] of Object.entries(config.services)) {
      const sources = service.discovery ?? [];
      if (sources.length === 0) continue;
      let manager = managers.get(name);
      if (manager === undefined) {
        const target = balancer.serviceHandle(name);
        if (target === undefined) continue;
        if (!installed) install();
        manager = new DiscoveryManager({ balancer, target, log: balancer.log });
        managers.set(name, manager);
      }
      manager.configure(sources);
    }
  };
  ensure(balancer.config);
  balancer.addHook('reload', (next) => ensure(next));
}
