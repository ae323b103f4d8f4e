/**
 * consistent-hash: requests with the same key (`hashKey`: the client
 * address, the path, a header, a cookie or a query parameter) go to the same
 * backend, and changing the set of N backends moves only about 1/N of the
 * keys: for caches and shards that benefit from seeing the same keys.
 * A request without the key (header or cookie absent) is hashed on its
 * client address. Weights set each backend's share of the ring; slow start
 * does not apply, since ramping a share would move keys back and forth.
 */
import type { Backend } from '../backends/backend.js';
import { hash32 } from './hash.js';
import { HashRing } from './hash-ring.js';
import type { PickContext, Picker, PickerFactory } from './picker.js';

export class ConsistentHashPicker implements Picker {
  readonly #ring: HashRing;

  constructor(backends: readonly Backend[]) {
    this.#ring = new HashRing(backends);
  }

  pick(ctx: PickContext): Backend | undefined {
    return this.#ring.lookup(hash32(ctx.hashKey ?? ctx.clientAddress), ctx.tried);
  }
}

export const consistentHash: PickerFactory = {
  name: 'consistent-hash',
  needsHashKey: true,
  build: (backends) => new ConsistentHashPicker(backends),
};
