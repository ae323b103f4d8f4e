/**
 * Seeded mutants of raw protocol text, for the differential parser tests
 * (fast-request against node:http, the response parser's two paths): the
 * same inputs on every run, so a failure can be reproduced.
 */

/** show renders raw bytes readably for failure messages. */
export function show(raw: string): string {
  return JSON.stringify(raw).replace(/[\u0080-\u00ff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
}

/** mulberry32 is a small seeded PRNG. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** mutate inserts, replaces (with one of `bytes`) or deletes one character of raw at a random position. */
function mutate(raw: string, rand: () => number, bytes: readonly number[]): string {
  const pos = Math.floor(rand() * raw.length);
  const byte = String.fromCharCode(bytes[Math.floor(rand() * bytes.length)]!);
  switch (Math.floor(rand() * 3)) {
    case 0: return raw.slice(0, pos) + byte + raw.slice(pos);
    case 1: return raw.slice(0, pos) + byte + raw.slice(pos + 1);
    default: return raw.slice(0, pos) + raw.slice(pos + 1);
  }
}

export interface MutantOptions {
  seed: number;
  /** count: how many random mutants at most, from at most `tries` attempts (duplicates are dropped). */
  count: number;
  tries: number;
  /** twiceEvery: every Nth attempt mutates twice. */
  twiceEvery: number;
  /** bytes: the characters inserted or substituted. */
  bytes: readonly number[];
}

/**
 * mutants returns unique one- and two-character mutants of the bases,
 * then, systematically, SP and HTAB inserted beside each ":", ",",
 * whitespace and CR, where whitespace rules differ most between parsers.
 */
export function mutants(bases: readonly string[], o: MutantOptions): string[] {
  const rand = mulberry32(o.seed);
  const seen = new Set<string>(bases);
  const out: string[] = [];
  const add = (m: string): void => {
    if (!seen.has(m)) {
      seen.add(m);
      out.push(m);
    }
  };
  for (let n = 0; n < o.tries && out.length < o.count; n++) {
    let m = mutate(bases[n % bases.length]!, rand, o.bytes);
    if (n % o.twiceEvery === o.twiceEvery - 1) m = mutate(m, rand, o.bytes);
    add(m);
  }
  for (const base of bases) {
    for (let i = 1; i < base.length; i++) {
      if (!':, \t\r'.includes(base[i - 1]!) && !':, \t\r'.includes(base[i]!)) continue;
      for (const ws of [' ', '\t', ' \t', '\t ']) add(base.slice(0, i) + ws + base.slice(i));
    }
  }
  return out;
}
