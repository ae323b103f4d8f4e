/**
 * The registry of balancing policies, by name. A policy is one file that
 * exports a PickerFactory; adding one touches that file, this list, and the
 * names a config may choose (config/algorithms.ts), which this module checks
 * against its built-ins when it loads.
 */
import { addAlgorithmName, BUILTIN_ALGORITHMS } from '../config/algorithms.js';
import type { PickerFactory } from './picker.js';
import { consistentHash } from './consistent-hash.js';
import { ipHash } from './ip-hash.js';
import { leastConnections } from './least-connections.js';
import { p2c } from './p2c.js';
import { random } from './random.js';
import { roundRobin } from './round-robin.js';
import { weightedRoundRobin } from './weighted-round-robin.js';

const factories = new Map<string, PickerFactory>();

export function registerPicker(factory: PickerFactory): void {
  factories.set(factory.name, factory);
  addAlgorithmName(factory.name);
}

export function getPickerFactory(name: string): PickerFactory | undefined {
  return factories.get(name);
}

export function knownAlgorithms(): string[] {
  return [...factories.keys()];
}

for (const factory of [roundRobin, weightedRoundRobin, leastConnections, random, p2c, ipHash, consistentHash]) registerPicker(factory);
if (knownAlgorithms().join() !== BUILTIN_ALGORITHMS.join()) {
  throw new Error(`the built-in pickers (${knownAlgorithms().join(', ')}) are not config/algorithms.ts's BUILTIN_ALGORITHMS (${BUILTIN_ALGORITHMS.join(', ')})`);
}
