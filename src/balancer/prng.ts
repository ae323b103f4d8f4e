/**
 * A small seeded pseudo-random generator (mulberry32) for the random
 * policies. Production pickers use Math.random; tests and benchmarks pass a
 * seeded generator so that a distribution check always sees the same draws.
 */

/** RandomSource returns a number in [0, 1), like Math.random. */
export type RandomSource = () => number;

/** seededRandom returns a deterministic RandomSource for a 32-bit seed. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
