/**
 * RouteTable: the routes of one configuration, compiled once, looked up per
 * request. First match wins; the index only skips routes that cannot
 * match, in the same order:
 *
 *   host       exact names through a map, "*.example.com" through a map of
 *              parent domains, routes without hosts in every bucket
 *   path       within a host's bucket, exact and prefix routes through a
 *              map of their first path segment; regex and path-less routes
 *              in every segment's list
 *
 * so that a look-up among many host and prefix routes tests a handful of
 * candidates, and no regex is tried on a route a map already ruled out.
 * The table is immutable and replaced whole on reload: a request keeps the
 * route it matched.
 */
import { firstSegment } from './path.js';
import { hostName, parentDomain } from './host.js';
import type { Route } from './route.js';

/** Bucket: the routes one host may reach, by the first segment of the path. */
class Bucket {
  readonly #bySegment = new Map<string, Route[]>();
  /** #rest: the routes every path may reach (no exact or prefix path with a first segment). */
  readonly #rest: Route[];

  constructor(routes: readonly Route[]) {
    const segments = new Set<string>();
    for (const r of routes) {
      const s = indexSegment(r);
      if (s !== null) segments.add(s);
    }
    this.#rest = routes.filter((r) => indexSegment(r) === null);
    for (const s of segments) this.#bySegment.set(s, routes.filter((r) => { const rs = indexSegment(r); return rs === null || rs === s; }));
  }

  candidates(path: string): readonly Route[] {
    if (this.#bySegment.size === 0) return this.#rest;
    return this.#bySegment.get(firstSegment(path)) ?? this.#rest;
  }
}

/**
 * indexSegment: the first path segment every path this route matches
 * starts with, or null when there is none to index by (no path condition,
 * a regex, the prefix "/").
 */
function indexSegment(route: Route): string | null {
  const path = route.config.match.path;
  const p = path?.exact ?? path?.prefix;
  if (p === undefined || p === '/') return null;
  // Prefixes match on whole segments, so even "/ap" names its first segment whole ("/ap", "/ap/...").
  return firstSegment(p);
}

export class RouteTable {
  readonly routes: readonly Route[];
  /** only: the single route when it matches every request (the one-service configuration): no look-up at all. */
  readonly only: Route | null;
  readonly #exact = new Map<string, Bucket>();
  readonly #wildcard = new Map<string, Bucket>();
  readonly #any: Bucket;
  readonly #params = { value: null as URLSearchParams | null };

  constructor(routes: readonly Route[]) {
    this.routes = routes;
    const first = routes[0];
    this.only = routes.length === 1 && first !== undefined && isCatchAll(first) ? first : null;
    const exactHosts = new Set<string>();
    const wildParents = new Set<string>();
    for (const r of routes) {
      for (const h of r.config.match.hosts ?? []) {
        const name = hostName(h);
        if (name.startsWith('*.')) wildParents.add(name.slice(2));
        else exactHosts.add(name);
      }
    }
    const anyHost = routes.filter((r) => r.config.match.hosts === undefined);
    this.#any = new Bucket(anyHost);
    for (const parent of wildParents) {
      this.#wildcard.set(parent, new Bucket(routes.filter((r) => r.config.match.hosts === undefined || hostsOf(r).has(`*.${parent}`))));
    }
    for (const host of exactHosts) {
      const parent = parentDomain(host);
      this.#exact.set(host, new Bucket(routes.filter((r) => {
        if (r.config.match.hosts === undefined) return true;
        const hosts = hostsOf(r);
        return hosts.has(host) || (parent !== '' && hosts.has(`*.${parent}`));
      })));
    }
  }

  /**
   * match returns the first route whose conditions all hold, or null.
   * `path` is normalized and without the query; `host` is a hostName().
   */
  match(method: string, path: string, query: string, host: string, rawHeaders: readonly string[]): Route | null {
    const bucket = this.#exact.get(host) ?? (this.#wildcard.size === 0 ? undefined : this.#wildcard.get(parentDomain(host))) ?? this.#any;
    const candidates = bucket.candidates(path);
    const params = this.#params;
    params.value = null;
    for (let i = 0; i < candidates.length; i++) {
      const route = candidates[i]!;
      if (route.matches(method, path, query, rawHeaders, params)) return route;
    }
    return null;
  }

  get(name: string): Route | undefined {
    return this.routes.find((r) => r.name === name);
  }
}

const hostSets = new WeakMap<Route, ReadonlySet<string>>();

function hostsOf(route: Route): ReadonlySet<string> {
  let set = hostSets.get(route);
  if (set === undefined) {
    set = new Set((route.config.match.hosts ?? []).map(hostName));
    hostSets.set(route, set);
  }
  return set;
}

/** isCatchAll: a route with no condition at all, which the table need not look anything up for. */
function isCatchAll(route: Route): boolean {
  const m = route.config.match;
  return m.hosts === undefined && m.path === undefined && m.methods === undefined && m.headers === undefined && m.query === undefined;
}
