/**
 * Failover: where a request goes when its service cannot serve it. A
 * service's `failover` applies wherever the service is used; a route's
 * overrides it for the route's own services. Chains follow the fallback
 * service's own failover (config/services.ts has refused cycles).
 *
 * The links are resolved once per route table, so a request asks a map
 * only when its service has already failed it.
 */
import type { FailoverConfig } from '../config/schema.js';
import type { Service, ServeVerdict } from './service.js';

export class Failover {
  readonly #conditions: ReadonlySet<ServeVerdict>;
  readonly #statuses: ReadonlySet<number>;

  constructor(readonly service: Service, config: FailoverConfig) {
    this.#conditions = new Set(config.on.filter((c): c is Exclude<ServeVerdict, 'ok'> => typeof c === 'string'));
    this.#statuses = new Set(config.on.filter((c): c is number => typeof c === 'number'));
  }

  /** onVerdict: does this failover take requests the service refused for `verdict`? */
  onVerdict(verdict: ServeVerdict): boolean {
    return verdict !== 'ok' && this.#conditions.has(verdict);
  }

  /** onStatus: does this failover take requests the service answered with `status`? */
  onStatus(status: number): boolean {
    return this.#statuses.size > 0 && this.#statuses.has(status);
  }

  get hasStatuses(): boolean {
    return this.#statuses.size > 0;
  }
}

/** FailoverTable: the failover of each service that has one, as one route sees them. */
export type FailoverTable = ReadonlyMap<Service, Failover>;

/**
 * serviceFailovers links every service's configured failover to the
 * fallback Service; `lookup` finds services by name (those of the table
 * being compiled). Unknown names were refused by config/services.ts.
 */
export function serviceFailovers(configs: Readonly<Record<string, { readonly failover?: FailoverConfig | undefined }>>, lookup: (name: string) => Service | undefined): Map<Service, Failover> {
  const out = new Map<Service, Failover>();
  for (const [name, config] of Object.entries(configs)) {
    if (config.failover === undefined) continue;
    const service = lookup(name);
    const fallback = lookup(config.failover.service);
    if (service !== undefined && fallback !== undefined) out.set(service, new Failover(fallback, config.failover));
  }
  return out;
}
