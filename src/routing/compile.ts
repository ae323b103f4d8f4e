/**
 * compileRoutes turns the configuration's routes into a RouteTable, with
 * the services they lead to and the filters features give them (the
 * per-route rate limit). It throws a ConfigError naming the route for what
 * only compiling can find; the schema and config/services.ts have checked
 * the rest.
 */
import { randomBytes } from 'node:crypto';
import { ConfigError, type ConfigProblem } from '../core/config-error.js';
import type { RequestFilter } from '../core/request-filter.js';
import { isGroup, parseTemplate, REDIRECT_PLACEHOLDERS, type Template } from '../core/template.js';
import type { FailoverConfig, RouteConfig } from '../config/schema.js';
import { routeName } from '../config/services.js';
import { Failover, serviceFailovers, type FailoverTable } from '../service/failover.js';
import type { Service } from '../service/service.js';
import { TrafficSplit, type SplitWeight } from '../service/split.js';
import { Route, type RouteAction, type RouteMirror } from './route.js';
import { RouteTable } from './table.js';
import { compileHeaderTransform, compileRewrite } from './transforms.js';

/** RouteFilterFactory lets a feature give a route its filters (null: none), e.g. the route's own rate limit. */
export type RouteFilterFactory = (route: RouteConfig, name: string) => RequestFilter | null;

export interface CompileOptions {
  readonly services: (name: string) => Service | undefined;
  readonly filters: readonly RouteFilterFactory[];
  readonly source?: string;
  /** serviceConfigs: the services' configs, for their `failover` (none when absent). */
  readonly serviceConfigs?: Readonly<Record<string, { readonly failover?: FailoverConfig | undefined }>>;
  /** secret signs split cookies whose route sets no `sticky.secret` (the balancer's sticky secret). */
  readonly secret?: Buffer;
}

export function compileRoutes(configs: readonly RouteConfig[], options: CompileOptions): RouteTable {
  const problems: ConfigProblem[] = [];
  const source = options.source ?? 'config';
  const routes: Route[] = [];
  const failovers = serviceFailovers(options.serviceConfigs ?? {}, options.services);
  configs.forEach((config, index) => {
    const name = routeName(config, index);
    const at = (key: string): string => `routes[${index}]${key === '' ? '' : `.${key}`}`;
    try {
      const problem = (key: string, message: string): void => { problems.push({ source, path: at(key), message }); };
      const action = actionOf(config, name, options, problem);
      if (action === null) return;
      const mirror = mirrorOf(config, options.services, problem);
      const filters: RequestFilter[] = [];
      for (const factory of options.filters) {
        const filter = factory(config, name);
        if (filter !== null) filters.push(filter);
      }
      routes.push(new Route({
        index, name, config, action, filters,
        rewrite: config.rewrite === undefined ? null : compileRewrite(config.rewrite),
        requestHeaders: compileHeaderTransform(config.requestHeaders),
        responseHeaders: compileHeaderTransform(config.responseHeaders),
        mirror,
        failovers: routeFailovers(config, action, failovers, options.services),
      }));
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else problems.push({ source, path: at(''), message: (err as Error).message });
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return new RouteTable(routes);
}

function actionOf(config: RouteConfig, name: string, options: CompileOptions, problem: (key: string, message: string) => void): RouteAction | null {
  const services = options.services;
  if (config.split !== undefined) {
    const weights: SplitWeight[] = [];
    config.split.forEach((side, i) => {
      const service = services(side.service);
      if (service === undefined) problem(`split[${i}].service`, `no service "${side.service}"`);
      else weights.push({ service, weight: side.weight });
    });
    if (weights.length < config.split.length) return null;
    const sticky: { cookie?: string | undefined; ttl?: number; secret?: string | undefined } | null = config.sticky === undefined || config.sticky === false ? null : config.sticky === true ? {} : config.sticky;
    const cookie = sticky === null ? null : {
      name: sticky.cookie ?? `fulcrum_split_${name.replace(/[^A-Za-z0-9_-]/g, '_')}`,
      ttl: sticky.ttl ?? 0,
      secret: sticky.secret ?? options.secret ?? randomBytes(32),
    };
    return { kind: 'split', split: new TrafficSplit(name, weights, cookie) };
  }
  if (config.service !== undefined) {
    const service = services(config.service);
    if (service === undefined) {
      problem('service', `no service "${config.service}"`);
      return null;
    }
    return { kind: 'service', service };
  }
  if (config.redirect !== undefined) {
    const groups = config.match.path?.regex === undefined ? 0 : countGroups(config.match.path.regex);
    let to: Template;
    try {
      to = parseTemplate(config.redirect.to, (name) => REDIRECT_PLACEHOLDERS.has(name) || (isGroup(name) && Number(name) >= 1 && Number(name) <= groups));
    } catch (err) {
      const hint = groups === 0 ? ' (groups such as {1} need a match.path.regex with groups)' : '';
      problem('redirect.to', `${(err as Error).message}${hint}`);
      return null;
    }
    return { kind: 'redirect', to, status: config.redirect.status };
  }
  const respond = config.respond!;
  return { kind: 'respond', status: respond.status, body: respond.body, headers: respond.headers };
}

function mirrorOf(config: RouteConfig, services: CompileOptions['services'], problem: (key: string, message: string) => void): RouteMirror | null {
  const m = config.mirror;
  if (m === undefined) return null;
  const service = services(m.service);
  if (service === undefined) {
    problem('mirror.service', `no service "${m.service}"`);
    return null;
  }
  return { service, percent: m.percent, maxBodySize: m.maxBodySize, maxInFlight: m.maxInFlight, inFlight: 0, cancels: new Set() };
}

/**
 * routeFailovers: the services' failovers, with the route's own in place
 * of theirs for the route's own services; null when there is none at all,
 * so that such a route's requests never look.
 */
function routeFailovers(config: RouteConfig, action: RouteAction, services: ReadonlyMap<Service, Failover>, lookup: CompileOptions['services']): FailoverTable | null {
  const own = config.failover === undefined ? undefined : lookup(config.failover.service);
  if (own === undefined || config.failover === undefined) return services.size === 0 ? null : services;
  const table = new Map(services);
  const primaries = action.kind === 'service' ? [action.service] : action.kind === 'split' ? action.split.sides.map((s) => s.service) : [];
  for (const service of primaries) table.set(service, new Failover(own, config.failover));
  return table;
}

/** countGroups: how many capture groups a regex has (a match against "" tells, whatever the pattern). */
function countGroups(source: string): number {
  return new RegExp(`${source}|`).exec('')!.length - 1;
}
