/**
 * SplitControl: the run-time weights of the routes' splits. A change (the
 * admin API's PATCH, or another instance's through the state store) is
 * validated, applied to the route table in force and kept, so that a
 * reload or a table compiled again keeps it, until the configuration
 * itself changes that route's split: then the file wins. Listeners hear
 * every change with its origin, so that the state store shares the ones
 * made here and not those it brought.
 */
import type { SplitSideConfig } from '../config/schema.js';
import type { Service } from '../service/service.js';
import type { SplitWeight } from '../service/split.js';
import type { RouteTable } from './table.js';

/** SplitOverride: the weights one route's split was given at run time, when and by whom. */
export interface SplitOverride {
  readonly route: string;
  readonly split: readonly SplitSideConfig[];
  /** at: ms since the epoch; the later change wins between instances. */
  readonly at: number;
  /** by: the instance that made it (the state store's instance id, or "local"). */
  readonly by: string;
  /** actor: who asked ("admin-api 10.0.0.7"). */
  readonly actor: string;
}

export type SplitOrigin = 'admin' | 'remote';

export type SplitListener = (override: SplitOverride, origin: SplitOrigin) => void;

/** SplitChangeError: a change that names no split route or an unknown service; its message says which. */
export class SplitChangeError extends Error {
  constructor(message: string, readonly path: string, readonly status: 400 | 404 | 409) {
    super(message);
  }
}

export class SplitControl {
  readonly #overrides = new Map<string, SplitOverride>();
  readonly #listeners: SplitListener[] = [];
  #table: RouteTable;
  #services: (name: string) => Service | undefined;

  constructor(table: RouteTable, services: (name: string) => Service | undefined) {
    this.#table = table;
    this.#services = services;
  }

  on(listener: SplitListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** overrides: the run-time changes in force, by route name. */
  get overrides(): ReadonlyMap<string, SplitOverride> {
    return this.#overrides;
  }

  /**
   * set applies new weights to a route's split now and keeps them; it
   * throws a SplitChangeError (nothing changed) for an unknown route, a
   * route without a split, or a service that does not exist.
   */
  set(override: SplitOverride, origin: SplitOrigin): void {
    const route = this.#table.get(override.route);
    if (route === undefined) throw new SplitChangeError(`no route "${override.route}"`, '', 404);
    if (route.split === null) throw new SplitChangeError(`route "${override.route}" has no split (its action is ${route.config.redirect !== undefined ? 'a redirect' : route.config.respond !== undefined ? 'a fixed answer' : `service ${route.config.service}`})`, '', 409);
    route.split.setWeights(this.#resolve(override.split));
    this.#overrides.set(override.route, override);
    for (const listener of this.#listeners) listener(override, origin);
  }

  /**
   * adopt makes `table` the one in force and applies the kept overrides to
   * it, except for a route whose split the configuration changed (compared
   * with `previous`, the splits as configured before) or that no longer
   * has one: that override is dropped.
   */
  adopt(table: RouteTable, services: (name: string) => Service | undefined, previous: ReadonlyMap<string, string> | null): void {
    this.#table = table;
    this.#services = services;
    for (const [name, o] of this.#overrides) {
      const route = table.get(name);
      const configured = route?.config.split === undefined ? null : JSON.stringify(route.config.split);
      if (route === undefined || route.split === null || (previous !== null && previous.get(name) !== configured)) {
        this.#overrides.delete(name);
        continue;
      }
      try {
        route.split.setWeights(this.#resolve(o.split));
      } catch {
        this.#overrides.delete(name); // a service it names is gone
      }
    }
  }

  #resolve(sides: readonly SplitSideConfig[]): SplitWeight[] {
    return sides.map((side, i) => {
      const service = this.#services(side.service);
      if (service === undefined) throw new SplitChangeError(`no service "${side.service}"`, `split.${i}.service`, 400);
      return { service, weight: side.weight };
    });
  }
}

/** configuredSplits: each split route's configured sides, as text, to tell whether a reload changed them. */
export function configuredSplits(table: RouteTable): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of table.routes) if (r.config.split !== undefined) out.set(r.name, JSON.stringify(r.config.split));
  return out;
}
