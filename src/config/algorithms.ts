/**
 * The balancing algorithm names a config may choose, so that config/ can
 * check `algorithm` without loading the pickers. balancer/registry.ts
 * checks, when it loads, that its built-in pickers are exactly these names,
 * and adds the name of every picker a program registers (registerPicker).
 */

/** The built-in algorithms, in the order a config error lists them. */
export const BUILTIN_ALGORITHMS: readonly string[] = [
  'round-robin', 'weighted-round-robin', 'least-connections', 'random', 'p2c', 'ip-hash', 'consistent-hash',
];

const names = new Set<string>(BUILTIN_ALGORITHMS);

/** addAlgorithmName makes `name` a valid `algorithm` (registerPicker calls it for every picker it registers). */
export function addAlgorithmName(name: string): void {
  names.add(name);
}

/** algorithmNames lists every name a config may choose: the built-ins, then registered ones, in the order added. */
export function algorithmNames(): string[] {
  return [...names];
}
