/**
 * The picker interfaces. A Picker chooses a backend for one request,
 * synchronously and without I/O. It is built from a snapshot of the pool
 * when membership changes and reads health (`state.reasons`) at pick time,
 * so a health flip costs nothing.
 */
import type { Backend } from '../backends/backend.js';
import type { FulcrumConfig } from '../config/schema.js';

export interface PickContext {
  /** clientAddress is the client's address (the forwarded one only from trusted proxies). */
  clientAddress: string;
  /** hashKey is the value of the configured `hashKey` for hash policies. */
  hashKey: string | undefined;
  /** tried holds the backends already attempted by this request (retries). */
  tried: ReadonlySet<Backend> | undefined;
  /** cookie is the request's Cookie header, read by sticky sessions; absent where there is none (upgrades). */
  cookie?: string | undefined;
}

export interface Picker {
  pick(ctx: PickContext): Backend | undefined;
}

/** PickerOptions are the balancing settings of the config a policy may read. */
export type PickerOptions = Pick<FulcrumConfig, 'hashKey' | 'slowStart' | 'p2c'>;

export interface PickerFactory {
  readonly name: string;
  /** needsHashKey: the proxy computes `ctx.hashKey` only for policies that read it. */
  readonly needsHashKey: boolean;
  build(backends: readonly Backend[], options: PickerOptions): Picker;
}

/** available is the pick-time test: healthy and not already tried by this request. */
export function available(b: Backend, tried: ReadonlySet<Backend> | undefined): boolean {
  return b.state.reasons === 0 && (tried === undefined || !tried.has(b));
}
