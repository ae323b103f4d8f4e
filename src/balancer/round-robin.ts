/**
 * round-robin: each healthy backend in turn. Unhealthy backends are skipped
 * by moving on to the next healthy one, and the cursor continues from the
 * backend chosen, so the rotation over the healthy ones stays even.
 */
import type { Backend } from '../backends/backend.js';
import { available, type PickContext, type Picker, type PickerFactory } from './picker.js';

export class RoundRobinPicker implements Picker {
  #next = 0;
  constructor(private readonly backends: readonly Backend[]) {}

  pick(ctx: PickContext): Backend | undefined {
    const list = this.backends;
    const n = list.length;
    for (let i = 0; i < n; i++) {
      const index = (this.#next + i) % n;
      const b = list[index]!;
      if (available(b, ctx.tried)) {
        this.#next = (index + 1) % n;
        return b;
      }
    }
    return undefined;
  }
}

export const roundRobin: PickerFactory = {
  name: 'round-robin',
  needsHashKey: false,
  build: (backends) => new RoundRobinPicker(backends),
};
