/**
 * Services and routes after validation: a configuration without `services`
 * describes one pool at the top level, which becomes the service `default`;
 * one without `routes` sends every request to its one service. This module
 * builds both forms into the one normalized shape and checks what the
 * schema cannot see (names that refer to nothing, duplicates, shadowed
 * routes), naming the key path of each problem.
 */
import type { ConfigProblem } from '../core/config-error.js';
import { POOL_KEYS, type FulcrumConfig, type RouteConfig, type ServiceConfig } from './schema.js';

/** DEFAULT_SERVICE names the service a configuration without `services` describes. */
export const DEFAULT_SERVICE = 'default';

/** ParsedConfig is the schema's output, before services and routes are filled in. */
export type ParsedConfig = Omit<FulcrumConfig, 'services' | 'routes'> & {
  services?: Record<string, ServiceConfig> | undefined;
  routes?: RouteConfig[] | undefined;
};

/** The limits that belong to a pool (at the top level they sit under `limits`). */
const POOL_LIMITS = ['maxConnectionsPerBackend', 'queueTimeout'] as const;

/**
 * mixedPoolKeys finds top-level pool keys written beside `services`: each
 * is an error that says where the key goes instead.
 */
export function mixedPoolKeys(raw: Record<string, unknown>, source: string): ConfigProblem[] {
  if (raw.services === undefined) return [];
  const problems: ConfigProblem[] = [];
  const first = typeof raw.services === 'object' && raw.services !== null ? Object.keys(raw.services)[0] : undefined;
  const into = first ?? '<name>';
  for (const key of POOL_KEYS) {
    if (key in raw) problems.push({ source, path: key, message: `a pool key beside "services": move it into a service (services.${into}.${key})` });
  }
  const limits = raw.limits;
  if (typeof limits === 'object' && limits !== null) {
    for (const key of POOL_LIMITS) {
      if (key in limits) problems.push({ source, path: `limits.${key}`, message: `a pool limit beside "services": move it into a service (services.${into}.${key})` });
    }
  }
  return problems;
}

/** defaultService is the service the top-level pool keys describe. */
export function defaultService(c: ParsedConfig): ServiceConfig {
  return {
    backends: c.backends,
    ...(c.discovery === undefined ? {} : { discovery: [c.discovery] }),
    algorithm: c.algorithm,
    hashKey: c.hashKey,
    ...(c.sticky === undefined ? {} : { sticky: c.sticky }),
    slowStart: c.slowStart,
    p2c: c.p2c,
    healthCheck: c.healthCheck,
    timeouts: c.timeouts,
    retries: c.retries,
    outlierDetection: c.outlierDetection,
    ...(c.circuitBreaker === undefined ? {} : { circuitBreaker: c.circuitBreaker }),
    backendTls: c.backendTls,
    upstream: c.upstream,
    ...(c.sendProxyProtocol === undefined ? {} : { sendProxyProtocol: c.sendProxyProtocol }),
    maxConnectionsPerBackend: c.limits.maxConnectionsPerBackend,
    queueTimeout: c.limits.queueTimeout,
  };
}

/** routeName is a route's name: its own, or its place in the list. */
export function routeName(route: RouteConfig, index: number): string {
  return route.name ?? `routes[${index}]`;
}

export interface NormalizedServices {
  readonly services: Record<string, ServiceConfig>;
  readonly routes: RouteConfig[];
  readonly problems: ConfigProblem[];
  readonly warnings: ConfigProblem[];
}

/** normalizeServices fills in `services` and `routes` and checks how they refer to each other. */
export function normalizeServices(c: ParsedConfig, source: string): NormalizedServices {
  const problems: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const services = c.services ?? { [DEFAULT_SERVICE]: defaultService(c) };
  const names = Object.keys(services);
  if (c.services !== undefined && names.length === 0) problems.push({ source, path: 'services', message: 'expected at least one service' });
  let routes = c.routes;
  if (routes === undefined) {
    if (names.length > 1) problems.push({ source, path: 'routes', message: `required with several services (${names.join(', ')}): say which requests go to which` });
    routes = names.length === 0 ? [] : [{ name: names.length === 1 && names[0] === DEFAULT_SERVICE ? DEFAULT_SERVICE : 'catch-all', match: {}, service: names[0]! }];
  } else if (routes.length === 0) {
    problems.push({ source, path: 'routes', message: 'expected at least one route' });
  }

  const seen = new Map<string, number>();
  const used = new Set<string>();
  let catchAll = -1;
  routes.forEach((route, i) => {
    const name = routeName(route, i);
    const earlier = seen.get(name);
    if (earlier !== undefined) problems.push({ source, path: `routes[${i}].name`, message: `duplicate route name "${name}" (also routes[${earlier}])` });
    else seen.set(name, i);
    const refer = (key: string, service: string): void => {
      used.add(service);
      if (services[service] === undefined) problems.push({ source, path: `routes[${i}].${key}`, message: `no service "${service}" (services: ${names.join(', ')})` });
    };
    if (route.service !== undefined) refer('service', route.service);
    route.split?.forEach((side, s) => refer(`split[${s}].service`, side.service));
    if (route.mirror !== undefined) refer('mirror.service', route.mirror.service);
    if (route.failover !== undefined) {
      refer('failover.service', route.failover.service);
      const own = route.service === undefined ? (route.split ?? []).map((s) => s.service) : [route.service];
      const cycle = failoverCycle(services, route.failover.service, own);
      if (cycle !== null) problems.push({ source, path: `routes[${i}].failover.service`, message: `failover cycle: ${cycle.join(' -> ')}` });
    }
    if (catchAll >= 0) {
      warnings.push({ source, path: `routes[${i}]`, message: `never matches: routes[${catchAll}]${routes![catchAll]!.name === undefined ? '' : ` ("${routes![catchAll]!.name}")`} before it matches every request` });
    } else if (matchesEverything(route)) {
      catchAll = i;
    }
  });
  for (const name of names) {
    const failover = services[name]!.failover;
    if (failover === undefined) continue;
    used.add(failover.service);
    if (services[failover.service] === undefined) {
      problems.push({ source, path: `services.${name}.failover.service`, message: `no service "${failover.service}" (services: ${names.join(', ')})` });
      continue;
    }
    const cycle = failoverCycle(services, failover.service, [name]);
    // Reported once, at the first service of the cycle in the order they are written.
    if (cycle !== null && names.find((n) => cycle.includes(n)) === name) problems.push({ source, path: `services.${name}.failover.service`, message: `failover cycle: ${cycle.join(' -> ')}` });
  }
  for (const name of names) {
    if (!used.has(name)) warnings.push({ source, path: `services.${name}`, message: 'no route uses this service' });
  }
  return { services, routes, problems, warnings };
}

/** matchesEverything: the route has no condition (or only ones that always hold); allow/deny refuse, they do not skip. */
function matchesEverything(route: RouteConfig): boolean {
  const m = route.match;
  const path = m.path;
  const anyPath = path === undefined || path.prefix === '/';
  return m.hosts === undefined && anyPath && m.methods === undefined && m.headers === undefined && m.query === undefined;
}

/**
 * failoverCycle follows the services' failover chain from `start` and
 * returns the services of the cycle it closes when the chain comes back to
 * one of `from` (listed from it, ending where it began), or null when the
 * chain ends.
 */
export function failoverCycle(services: Readonly<Record<string, ServiceConfig>>, start: string, from: readonly string[]): string[] | null {
  for (const origin of from) {
    const path = [origin];
    const seen = new Set(path);
    let at: string | undefined = start;
    while (at !== undefined) {
      path.push(at);
      if (at === origin) return path;
      if (seen.has(at)) break; // a cycle further down the chain, reported at its own service
      seen.add(at);
      at = services[at]?.failover?.service;
    }
  }
  return null;
}
