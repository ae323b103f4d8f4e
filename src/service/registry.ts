/**
 * ServiceRegistry holds a balancer's services by name. Today's
 * configuration describes one pool, which becomes the service named
 * `default`; routing chooses among several.
 */
import type { Service } from './service.js';

export const DEFAULT_SERVICE = 'default';

export class ServiceRegistry {
  readonly #byName = new Map<string, Service>();
  /** #default is kept in a field: every request reads it, and a Map look-up per request is not free. */
  #default: Service | null = null;

  /** default is the service a request goes to when nothing routes it elsewhere. */
  get default(): Service {
    if (this.#default === null) throw new Error('no default service');
    return this.#default;
  }

  get(name: string): Service | undefined {
    return this.#byName.get(name);
  }

  add(service: Service): void {
    if (this.#byName.has(service.name)) throw new Error(`service "${service.name}" exists already`);
    this.#byName.set(service.name, service);
    if (service.name === DEFAULT_SERVICE) this.#default = service;
  }

  delete(name: string): boolean {
    if (name === DEFAULT_SERVICE) this.#default = null;
    return this.#byName.delete(name);
  }

  get size(): number {
    return this.#byName.size;
  }

  values(): IterableIterator<Service> {
    return this.#byName.values();
  }
}
