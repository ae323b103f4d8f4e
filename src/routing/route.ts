/**
 * Route: one entry of the route table, compiled once from its config: its
 * match conditions, its action (a service, a redirect or a fixed answer),
 * its filters (allow/deny, a per-route rate limit), its transforms and the
 * policy it overrides (timeouts, retries, preserveHost). Immutable except
 * for its counters; a reload compiles new routes.
 */
import type { RequestFilter } from '../core/request-filter.js';
import { TrustedProxies } from '../core/trusted-proxies.js';
import type { Template } from '../core/template.js';
import type { RetriesConfig, RouteConfig, RouteMatchConfig } from '../config/schema.js';
import type { RetryPolicy } from '../service/retry.js';
import type { Service } from '../service/service.js';
import type { FailoverTable } from '../service/failover.js';
import type { TrafficSplit } from '../service/split.js';
import { prefixMatches } from './path.js';
import type { HeaderTransform, Rewrite } from './transforms.js';

export type RouteAction =
  | { readonly kind: 'service'; readonly service: Service }
  | { readonly kind: 'split'; readonly split: TrafficSplit }
  | { readonly kind: 'redirect'; readonly to: Template; readonly status: number }
  | { readonly kind: 'respond'; readonly status: number; readonly body: string; readonly headers: Readonly<Record<string, string>> };

interface ValueCondition {
  /** name: the header's lower-case name, or the query parameter's name. */
  readonly name: string;
  readonly exact: string | null;
  readonly regex: RegExp | null;
  /** present: for headers, `{present: true|false}`; null when a value is compared. */
  readonly present: boolean | null;
}

/** AccessList: the client addresses a route admits (`allow`) and refuses (`deny`, which wins). */
export class AccessList {
  readonly #allow: TrustedProxies | null;
  readonly #deny: TrustedProxies | null;

  constructor(allow: readonly string[] | undefined, deny: readonly string[] | undefined) {
    this.#allow = allow === undefined ? null : new TrustedProxies(allow);
    this.#deny = deny === undefined ? null : new TrustedProxies(deny);
  }

  admits(address: string): boolean {
    if (this.#deny !== null && this.#deny.has(address)) return false;
    return this.#allow === null || this.#allow.has(address);
  }
}

/**
 * RouteMirror: where a route's sampled copies go and how many may be in
 * flight; `inFlight` counts the copies out now (proxy/mirror.ts).
 */
export interface RouteMirror {
  readonly service: Service;
  readonly percent: number;
  readonly maxBodySize: number;
  readonly maxInFlight: number;
  inFlight: number;
  /** cancels: one function per copy out, that ends it (shutdown does not wait for copies). */
  readonly cancels: Set<() => void>;
}

export interface RouteParts {
  readonly index: number;
  readonly name: string;
  readonly config: RouteConfig;
  readonly action: RouteAction;
  readonly filters: readonly RequestFilter[];
  readonly rewrite: Rewrite | null;
  readonly requestHeaders: HeaderTransform | null;
  readonly responseHeaders: HeaderTransform | null;
  readonly mirror?: RouteMirror | null;
  readonly failovers?: FailoverTable | null;
}

export class Route {
  readonly index: number;
  readonly name: string;
  readonly config: RouteConfig;
  readonly action: RouteAction;
  /**
   * service: the action's service (for a split, its first side: what a
   * refusal before the split chose is counted under), or null for
   * redirects and fixed answers.
   */
  readonly service: Service | null;
  /** split: the weighted sides, when the action is a split. */
  readonly split: TrafficSplit | null;
  /** mirror: where sampled copies go, or null. */
  readonly mirror: RouteMirror | null;
  /** failovers: the failover of each service this route may use (its own override first), or null when none has one. */
  readonly failovers: FailoverTable | null;
  readonly filters: readonly RequestFilter[];
  readonly access: AccessList | null;
  readonly rewrite: Rewrite | null;
  readonly requestHeaders: HeaderTransform | null;
  readonly responseHeaders: HeaderTransform | null;
  readonly timeouts: { readonly response?: number | undefined; readonly idle?: number | undefined; readonly total?: number | undefined } | null;
  readonly preserveHost: boolean | null;
  readonly retryOverrides: Partial<RetriesConfig> | null;
  /** pathRegex: the match's path regex (its groups feed redirects), or null. */
  readonly pathRegex: RegExp | null;

  readonly #exact: string | null;
  readonly #prefix: string | null;
  readonly #methods: ReadonlySet<string> | null;
  readonly #headers: readonly ValueCondition[] | null;
  readonly #query: readonly ValueCondition[] | null;
  /** #retries: this route's policy over each service policy it was asked for (a reload makes new ones). */
  readonly #retries = new WeakMap<RetryPolicy, RetryPolicy>();
  #retryBase: RetryPolicy | null = null;
  #retry: RetryPolicy | null = null;

  constructor(parts: RouteParts) {
    const c = parts.config;
    const m: RouteMatchConfig = c.match;
    this.index = parts.index;
    this.name = parts.name;
    this.config = c;
    this.action = parts.action;
    this.split = parts.action.kind === 'split' ? parts.action.split : null;
    this.service = parts.action.kind === 'service' ? parts.action.service : this.split !== null ? this.split.sides[0]!.service : null;
    this.mirror = parts.mirror ?? null;
    this.failovers = parts.failovers ?? null;
    this.filters = parts.filters;
    this.access = c.allow === undefined && c.deny === undefined ? null : new AccessList(c.allow, c.deny);
    this.rewrite = parts.rewrite;
    this.requestHeaders = parts.requestHeaders;
    this.responseHeaders = parts.responseHeaders;
    this.timeouts = c.timeouts ?? null;
    this.preserveHost = c.preserveHost ?? null;
    this.retryOverrides = c.retries ?? null;
    this.#exact = m.path?.exact ?? null;
    this.#prefix = m.path?.prefix ?? null;
    this.pathRegex = m.path?.regex === undefined ? null : new RegExp(m.path.regex);
    this.#methods = m.methods === undefined ? null : new Set(m.methods);
    this.#headers = m.headers === undefined ? null : Object.entries(m.headers).map(([name, v]) => condition(name.toLowerCase(), v));
    this.#query = m.query === undefined ? null : Object.entries(m.query).map(([name, v]) => condition(name, v));
  }

  /**
   * matches checks every condition but the host (the table's index has
   * chosen this route by host already): path, method, headers, query.
   * `query` is the query string without "?"; `params` parses it once per
   * look-up, for the routes that test it.
   */
  matches(method: string, path: string, query: string, rawHeaders: readonly string[], params: { value: URLSearchParams | null }): boolean {
    if (this.#exact !== null && path !== this.#exact) return false;
    if (this.#prefix !== null && !prefixMatches(this.#prefix, path)) return false;
    if (this.pathRegex !== null && !this.pathRegex.test(path)) return false;
    if (this.#methods !== null && !this.#methods.has(method)) return false;
    if (this.#headers !== null) {
      for (const h of this.#headers) if (!headerHolds(h, rawHeaders)) return false;
    }
    if (this.#query !== null) {
      params.value ??= new URLSearchParams(query);
      for (const q of this.#query) {
        const values = params.value.getAll(q.name);
        if (!values.some((v) => valueHolds(q, v))) return false;
      }
    }
    return true;
  }

  /**
   * retryFor: the service's retry policy with this route's overrides
   * (sharing the service's budget), made once per service policy: a split
   * or a failover asks for several services in turn.
   */
  retryFor(service: Service): RetryPolicy {
    if (this.retryOverrides === null) return service.retry;
    // The last one asked for first: a route with one service never reaches the map.
    if (this.#retryBase === service.retry) return this.#retry!;
    let policy = this.#retries.get(service.retry);
    if (policy === undefined) {
      policy = service.retry.with(this.retryOverrides);
      this.#retries.set(service.retry, policy);
    }
    this.#retryBase = service.retry;
    this.#retry = policy;
    return policy;
  }
}

function condition(name: string, value: string | { regex: string } | { present: boolean }): ValueCondition {
  if (typeof value === 'string') return { name, exact: value, regex: null, present: null };
  if ('regex' in value) return { name, exact: null, regex: new RegExp(value.regex), present: null };
  return { name, exact: null, regex: null, present: value.present };
}

function valueHolds(c: ValueCondition, value: string): boolean {
  return c.exact !== null ? value === c.exact : c.regex !== null ? c.regex.test(value) : true;
}

/** headerHolds: some field of that name holds the condition (or, for `present: false`, none exists). */
function headerHolds(c: ValueCondition, raw: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== c.name.length || name.toLowerCase() !== c.name) continue;
    seen = true;
    if (c.present === null && valueHolds(c, raw[i + 1]!.trim())) return true;
  }
  return c.present === null ? false : c.present === seen;
}
