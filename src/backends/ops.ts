/**
 * BackendOps: the run-time changes to the backend set (add, remove, weight,
 * state), applied in one place whoever asks: the admin API, a peer instance
 * through the shared store, or discovery. Every applied change is emitted as
 * an `op` event with its origin, so that the shared store can propagate the
 * local ones without echoing the remote ones.
 */
import { EventEmitter } from 'node:events';
import type { Backend } from './backend.js';
import type { BackendPool } from './pool.js';
import { Reason } from './reasons.js';
import type { BackendConfig } from '../config/schema.js';
import { backendSchema } from '../config/schema.js';

export type BackendStateName = 'enabled' | 'draining' | 'disabled';
export type OpOrigin = 'admin' | 'remote' | 'discovery' | 'config';

export type BackendOp =
  | { readonly kind: 'add'; readonly id: string; readonly config: BackendConfig }
  | { readonly kind: 'remove'; readonly id: string; readonly url: string; readonly drain: boolean }
  | { readonly kind: 'weight'; readonly id: string; readonly url: string; readonly weight: number }
  | { readonly kind: 'state'; readonly id: string; readonly url: string; readonly state: BackendStateName };

export interface OpEvent {
  readonly op: BackendOp;
  readonly origin: OpOrigin;
  /** actor says who asked (e.g. "admin-api 127.0.0.1"), for logs. */
  readonly actor: string;
}

export class BackendOps extends EventEmitter<{ op: [OpEvent] }> {
  constructor(private readonly pool: BackendPool, private readonly onDrainedNow: (b: Backend) => void) {
    super();
  }

  add(input: unknown, origin: OpOrigin, actor: string): Backend {
    const config = backendSchema.parse(input);
    const backend = this.pool.add(config);
    this.emit('op', { op: { kind: 'add', id: backend.id, config: { ...config, id: backend.id } }, origin, actor });
    return backend;
  }

  /** remove takes a backend out; with `drain`, it first stops new traffic and leaves once in-flight reaches 0. */
  remove(id: string, drain: boolean, origin: OpOrigin, actor: string): Backend | undefined {
    const backend = this.pool.get(id);
    if (backend === undefined) return undefined;
    if (drain && backend.state.inflight > 0) {
      backend.setReason(Reason.DRAINING, true);
      backend.removeWhenDrained = true;
    } else {
      this.pool.remove(id);
      this.onDrainedNow(backend);
    }
    this.emit('op', { op: { kind: 'remove', id, url: backend.url.href, drain }, origin, actor });
    return backend;
  }

  setWeight(id: string, weight: number, origin: OpOrigin, actor: string): Backend | undefined {
    const backend = this.pool.setWeight(id, weight);
    if (backend !== undefined) this.emit('op', { op: { kind: 'weight', id, url: backend.url.href, weight }, origin, actor });
    return backend;
  }

  /** setState: draining (no new requests), disabled (out of rotation), enabled (both cleared). */
  setState(id: string, state: BackendStateName, origin: OpOrigin, actor: string): Backend | undefined {
    const backend = this.pool.get(id);
    if (backend === undefined) return undefined;
    backend.setReason(Reason.DRAINING, state === 'draining');
    backend.setReason(Reason.DISABLED, state === 'disabled');
    if (state !== 'draining') backend.removeWhenDrained = false;
    this.emit('op', { op: { kind: 'state', id, url: backend.url.href, state }, origin, actor });
    return backend;
  }
}
