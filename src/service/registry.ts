/**
 * ServiceRegistry holds a balancer's services by name. A configuration
 * without `services` describes one pool, which becomes the service named
 * `default`; routes choose among several.
 */
import { DEFAULT_SERVICE } from '../config/services.js';
import type { Service } from './service.js';

export { DEFAULT_SERVICE };

export class ServiceRegistry {
  readonly #byName = new Map<string, Service>();
  #primary: Service | null = null;

  /**
   * default is the service that names without a service mean (the admin
   * API's /admin/backends, the top-level backends of /status): the one
   * named `default`, else the first one configured.
   */
  get default(): Service {
    if (this.#primary === null) throw new Error('no service');
    return this.#primary;
  }

  get(name: string): Service | undefined {
    return this.#byName.get(name);
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  add(service: Service): void {
    if (this.#byName.has(service.name)) throw new Error(`service "${service.name}" exists already`);
    this.#byName.set(service.name, service);
    this.#pickPrimary();
  }

  delete(name: string): boolean {
    const deleted = this.#byName.delete(name);
    this.#pickPrimary();
    return deleted;
  }

  get size(): number {
    return this.#byName.size;
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  values(): IterableIterator<Service> {
    return this.#byName.values();
  }

  #pickPrimary(): void {
    this.#primary = this.#byName.get(DEFAULT_SERVICE) ?? this.#byName.values().next().value ?? null;
  }
}
