/**
 * ServiceRegistry holds a balancer's services by name. Today's
 * configuration describes one pool, which becomes the service named
 * `default`; routing chooses among several.
 */
import type { Service } from './service.js';

export const DEFAULT_SERVICE = 'default';

export class ServiceRegistry {
  readonly #byName = new Map<string, Service>();

  /** default is the service a request goes to when nothing routes it elsewhere. */
  get default(): Service {
    const service = this.#byName.get(DEFAULT_SERVICE);
    if (service === undefined) throw new Error('no default service');
    return service;
  }

  get(name: string): Service | undefined {
    return this.#byName.get(name);
  }

  add(service: Service): void {
    if (this.#byName.has(service.name)) throw new Error(`service "${service.name}" exists already`);
    this.#byName.set(service.name, service);
  }

  delete(name: string): boolean {
    return this.#byName.delete(name);
  }

  get size(): number {
    return this.#byName.size;
  }

  values(): IterableIterator<Service> {
    return this.#byName.values();
  }
}
