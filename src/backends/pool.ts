/**
 * BackendPool is the live set of backends, by id. Readers take `snapshot`,
 * an immutable array replaced (never mutated) when membership changes, so a
 * picker built from it stays valid until the next change. Updating with a
 * new list keeps the state (counters, health, connections) of every backend
 * that stays, matched by id, else by URL.
 */
import { EventEmitter } from 'node:events';
import type { BackendConfig } from '../config/schema.js';
import { Backend } from './backend.js';

export interface PoolChange {
  readonly added: readonly Backend[];
  readonly removed: readonly Backend[];
  readonly updated: readonly Backend[];
}

export class BackendPool extends EventEmitter<{ change: [PoolChange] }> {
  #snapshot: readonly Backend[] = [];
  #byId = new Map<string, Backend>();
  #nextId = 1;
  /** #started: the first membership (start-up) is in; later arrivals ramp up under slow start. */
  #started = false;

  get snapshot(): readonly Backend[] {
    return this.#snapshot;
  }

  get(id: string): Backend | undefined {
    return this.#byId.get(id);
  }

  findByUrl(url: string): Backend | undefined {
    const href = new URL(url).href;
    for (const b of this.#snapshot) if (b.url.href === href) return b;
    return undefined;
  }

  /** replaceAll makes the pool exactly `configs`, keeping the state of backends that stay. */
  replaceAll(configs: readonly BackendConfig[]): PoolChange {
    const kept = new Set<Backend>();
    const next: Backend[] = [];
    const added: Backend[] = [];
    const updated: Backend[] = [];
    // The ids the list names are taken, even by a backend further down: an automatic id never repeats one,
    // and an unnamed backend whose automatic id the list now gives to another backend gets a new one.
    const named = new Set<string>();
    for (const config of configs) if (config.id !== undefined) named.add(config.id);
    for (const config of configs) {
      const existing = (config.id !== undefined ? this.#byId.get(config.id) : undefined)
        ?? (config.id === undefined ? this.findByUrl(config.url) : undefined);
      const keepsId = config.id !== undefined || (existing !== undefined && !named.has(existing.id));
      if (existing !== undefined && existing.url.href === new URL(config.url).href && !kept.has(existing) && keepsId) {
        kept.add(existing);
        if (existing.weight !== config.weight || JSON.stringify(existing.config) !== JSON.stringify(config)) {
          existing.weight = config.weight;
          existing.config = config;
          updated.push(existing);
        }
        next.push(existing);
      } else {
        const backend = new Backend({ id: this.#allocateId(config.id, next, named), config, joinedRunningPool: this.#started });
        added.push(backend);
        next.push(backend);
      }
    }
    const removed = this.#snapshot.filter((b) => !kept.has(b));
    return this.#commit(next, { added, removed, updated });
  }

  /** add appends one backend; it fails when the URL or id is already present. */
  add(config: BackendConfig): Backend {
    if (this.findByUrl(config.url) !== undefined) throw new Error(`a backend with url ${config.url} already exists`);
    if (config.id !== undefined && this.#byId.has(config.id)) throw new Error(`a backend with id ${config.id} already exists`);
    const backend = new Backend({ id: this.#allocateId(config.id, this.#snapshot), config, joinedRunningPool: this.#started });
    this.#commit([...this.#snapshot, backend], { added: [backend], removed: [], updated: [] });
    return backend;
  }

  remove(id: string): Backend | undefined {
    const backend = this.#byId.get(id);
    if (backend === undefined) return undefined;
    this.#commit(this.#snapshot.filter((b) => b !== backend), { added: [], removed: [backend], updated: [] });
    return backend;
  }

  /** setWeight changes a weight in place; pickers that cache weights are rebuilt. */
  setWeight(id: string, weight: number): Backend | undefined {
    const backend = this.#byId.get(id);
    if (backend === undefined) return undefined;
    backend.weight = weight;
    backend.config = { ...backend.config, weight };
    this.#commit(this.#snapshot, { added: [], removed: [], updated: [backend] });
    return backend;
  }

  /** setBackup moves a backend between the primaries and the backups, in place; the picker is rebuilt. */
  setBackup(id: string, backup: boolean): Backend | undefined {
    const backend = this.#byId.get(id);
    if (backend === undefined) return undefined;
    const { backup: _was, ...rest } = backend.config;
    backend.config = backup ? { ...rest, backup } : rest;
    this.#commit(this.#snapshot, { added: [], removed: [], updated: [backend] });
    return backend;
  }

  #allocateId(wanted: string | undefined, taken: readonly Backend[], reserved: ReadonlySet<string> = new Set()): string {
    if (wanted !== undefined) return wanted;
    const used = new Set([...this.#byId.keys(), ...taken.map((b) => b.id), ...reserved]);
    let id: string;
    do id = `b${this.#nextId++}`; while (used.has(id));
    return id;
  }

  #commit(next: readonly Backend[], change: PoolChange): PoolChange {
    this.#started = true;
    this.#snapshot = Object.freeze([...next]);
    this.#byId = new Map(next.map((b) => [b.id, b]));
    if (change.added.length > 0 || change.removed.length > 0 || change.updated.length > 0) this.emit('change', change);
    return change;
  }
}
