/**
 * ip-hash: a client address always goes to the same backend (session
 * affinity without cookies, e.g. for clients that do not keep them). The
 * address is the forwarded one only when the peer is a configured trusted
 * proxy. It uses the consistent-hash ring, so adding or removing a backend
 * moves only about 1/N of the clients, and a client whose backend is down is
 * served by the next one on the ring until it recovers. Clients behind one
 * NAT share a backend: prefer sticky sessions when that matters.
 */
import type { Backend } from '../backends/backend.js';
import { hash32 } from './hash.js';
import { HashRing } from './hash-ring.js';
import type { PickContext, Picker, PickerFactory } from './picker.js';

export class IpHashPicker implements Picker {
  readonly #ring: HashRing;

  constructor(backends: readonly Backend[]) {
    this.#ring = new HashRing(backends);
  }

  pick(ctx: PickContext): Backend | undefined {
    return this.#ring.lookup(hash32(ctx.clientAddress), ctx.tried);
  }
}

export const ipHash: PickerFactory = {
  name: 'ip-hash',
  needsHashKey: false,
  build: (backends) => new IpHashPicker(backends),
};
