/**
 * The dashboard's model: one snapshot of the balancer, built once per tick
 * and sent to every connected page. It is the /status document (so that
 * what features add there, such as the Redis cluster's instances, shows up
 * too) trimmed to what the page draws, with the sampler's live figures.
 */
import type { BalancerHost } from '../../app/host.js';
import type { HealthEvent } from '../../core/events.js';
import type { LiveFigures, Sampler } from './sampler.js';

/** RECENT_EVENTS: how many health events the page lists. */
export const RECENT_EVENTS = 15;

export interface DashboardBackend extends LiveFigures {
  readonly id: string;
  /** service: the service the backend belongs to (ids are unique within a service only). */
  readonly service: string;
  readonly url: string;
  readonly healthy: boolean;
  readonly state: string;
  readonly reasons: readonly string[];
  readonly weight: number;
  readonly effectiveWeight: number;
  /** active: requests (and WebSocket tunnels) in flight. */
  readonly active: number;
  readonly requests: number;
  readonly lastCheckError: string | null;
  /** since: when the backend last changed between healthy and not (ISO time). */
  readonly since: string;
}

/** DashboardService: one service's row on the page, with its live figures. */
export interface DashboardService extends LiveFigures {
  readonly name: string;
  readonly algorithm: string;
  readonly backends: number;
  readonly healthy: number;
  readonly active: number;
  readonly routes: readonly string[];
}

/** DashboardRoute: one route's row, as `fulcrum routes` describes it, with its request count. */
export interface DashboardRoute {
  readonly name: string;
  readonly match: string;
  readonly action: string;
  readonly requests: number;
}

export interface DashboardSnapshot {
  readonly t: number;
  readonly version: string;
  readonly algorithm: string;
  readonly uptimeSeconds: number;
  readonly totals: LiveFigures & { readonly backends: number; readonly healthy: number; readonly active: number; readonly requests: number };
  /** backends: every service's, each with its service. */
  readonly backends: readonly DashboardBackend[];
  readonly defaultService: string;
  readonly services: readonly DashboardService[];
  readonly routes: readonly DashboardRoute[];
  readonly events: readonly HealthEvent[];
  /** cluster: the instances sharing state through Redis, as /status shows them; null without Redis. */
  readonly cluster: unknown;
  /** instanceId: this instance's id in the cluster, when there is one. */
  readonly instanceId: string | null;
  /** store: the shared store's type and connection state, as /status shows them; null without Redis. */
  readonly store: unknown;
  readonly lastReload: unknown;
  /** adminEnabled: a token is configured, so the page may offer drain/enable. */
  readonly adminEnabled: boolean;
  /** circuits: the state of each service's circuit breaker (services without one are left out). */
  readonly circuits: readonly DashboardCircuit[];
}

export interface DashboardCircuit {
  readonly service: string;
  readonly state: string;
  readonly since: string;
}

interface StatusBackend {
  id: string; service?: string; url: string; healthy: boolean; state: string; reasons: string[]; weight: number; effectiveWeight: number;
  activeConnections: number; requests: number; lastCheckError: string | null; since: string;
}

export function buildSnapshot(balancer: BalancerHost, sampler: Sampler, now = Date.now()): DashboardSnapshot {
  const status = balancer.status();
  const shared = (status.store as { type?: string } | undefined)?.type !== undefined && (status.store as { type?: string }).type !== 'memory';
  const list = (status.backends as StatusBackend[] | undefined) ?? [];
  let active = 0;
  let healthy = 0;
  const backends = list.map((b): DashboardBackend => {
    active += b.activeConnections;
    if (b.healthy) healthy++;
    const service = b.service ?? balancer.defaultService;
    return {
      id: b.id,
      service,
      url: b.url,
      healthy: b.healthy,
      state: b.state,
      reasons: b.reasons,
      weight: b.weight,
      effectiveWeight: b.effectiveWeight,
      active: b.activeConnections,
      requests: b.requests,
      lastCheckError: b.lastCheckError,
      since: b.since,
      ...sampler.figures(b.id, service),
    };
  });
  const routes = ((status.routes as DashboardRoute[] | undefined) ?? []).map((r) => ({ name: r.name, match: r.match, action: r.action, requests: r.requests }));
  const services = Object.entries((status.services as Record<string, { algorithm: string; healthyBackends: number; backends: StatusBackend[] }> | undefined) ?? {})
    .map(([name, s]): DashboardService => ({
      name,
      algorithm: s.algorithm,
      backends: s.backends.length,
      healthy: s.healthyBackends,
      active: s.backends.reduce((n, b) => n + b.activeConnections, 0),
      routes: balancer.config.routes.flatMap((r, i) => (r.service === name ? [r.name ?? `routes[${i}]`] : [])),
      ...sampler.serviceFigures(name),
    }));
  return {
    t: now,
    version: balancer.version,
    algorithm: balancer.config.algorithm,
    uptimeSeconds: Math.round((now - balancer.startedAt) / 1000),
    totals: { backends: backends.length, healthy, active, requests: balancer.metrics.totalRequests, ...sampler.totals() },
    backends,
    defaultService: balancer.defaultService,
    services,
    routes,
    events: balancer.events.slice(-RECENT_EVENTS).reverse(),
    // Instances matter when they share state: with the memory store there is only this one.
    cluster: shared ? status.cluster ?? null : null,
    instanceId: shared ? (status.instance as { id?: string } | undefined)?.id ?? null : null,
    store: shared ? status.store ?? null : null,
    lastReload: status.lastReload ?? null,
    adminEnabled: balancer.config.admin.token !== undefined,
    circuits: circuitsOf(status.services),
  };
}

/** circuitsOf reads the circuit of each service in /status's `services`. */
function circuitsOf(services: unknown): DashboardCircuit[] {
  const out: DashboardCircuit[] = [];
  if (typeof services !== 'object' || services === null) return out;
  for (const [service, s] of Object.entries(services as Record<string, { circuit?: { state: string; since: string } }>)) {
    if (s.circuit !== undefined) out.push({ service, state: s.circuit.state, since: s.circuit.since });
  }
  return out;
}
