/**
 * HashRing is a ketama-style consistent-hash ring: each backend owns
 * VNODES points (fewer in proportion for a lower weight, none for weight 0),
 * placed by hashing its URL and the point's number, and a key belongs to
 * the first point at or after the key's hash. Adding or removing one of N
 * backends therefore moves only the keys of the points it gains or loses,
 * about 1/N of them. When the owner is unavailable the walk continues to the
 * next point of another backend, so only that backend's keys move, and they
 * return when it recovers (nothing is rebuilt on a health flip).
 *
 * Points are derived from the URL, not the id, so balancer instances that
 * number their backends differently still agree on where a key goes.
 */
import type { Backend } from '../backends/backend.js';
import { hash32 } from './hash.js';
import { available } from './picker.js';

/** VNODES is the number of points of a backend of the highest weight: ~160 keeps each share within a few % of 1/N. */
export const VNODES = 160;

/** OWNER_SCALE: a point is sorted as hash * 2^20 + owner, exact in a float64 (up to 2^20 backends). */
const OWNER_SCALE = 2 ** 20;

export class HashRing {
  /** #hashes are the points' positions, ascending; #owners[i] is the index of the backend owning point i. */
  readonly #hashes: Uint32Array;
  readonly #owners: Uint32Array;
  /** #seen marks backends already found unavailable during one lookup (stamped with #generation), without allocating. */
  readonly #seen: Uint32Array;
  #generation = 0;

  constructor(private readonly backends: readonly Backend[]) {
    let maxWeight = 0;
    for (const b of backends) maxWeight = Math.max(maxWeight, b.weight);
    const counts = backends.map((b) => (b.weight > 0 ? Math.max(1, Math.round((VNODES * b.weight) / maxWeight)) : 0));
    const keys = new Float64Array(counts.reduce((sum, c) => sum + c, 0));
    let k = 0;
    backends.forEach((b, owner) => {
      const name = b.url.href;
      for (let i = 0; i < counts[owner]!; i++) keys[k++] = hash32(`${name}#${i}`) * OWNER_SCALE + owner;
    });
    keys.sort();
    this.#hashes = new Uint32Array(keys.length);
    this.#owners = new Uint32Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      this.#owners[i] = key % OWNER_SCALE;
      this.#hashes[i] = (key - this.#owners[i]!) / OWNER_SCALE;
    }
    this.#seen = new Uint32Array(backends.length);
  }

  /** size is the number of points on the ring. */
  get size(): number {
    return this.#hashes.length;
  }

  /** lookup returns the available backend that owns `hash`, or undefined when none is available. */
  lookup(hash: number, tried: ReadonlySet<Backend> | undefined): Backend | undefined {
    const hashes = this.#hashes;
    const points = hashes.length;
    if (points === 0) return undefined;
    let lo = 0;
    let hi = points;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    const start = lo === points ? 0 : lo;
    const first = this.backends[this.#owners[start]!]!;
    if (available(first, tried)) return first;
    return this.#walk(start, tried);
  }

  /** #walk goes round the ring from `start` to the next point whose backend is available. */
  #walk(start: number, tried: ReadonlySet<Backend> | undefined): Backend | undefined {
    const owners = this.#owners;
    const points = owners.length;
    const seen = this.#seen;
    if (++this.#generation === 0xffffffff) { seen.fill(0); this.#generation = 1; }
    const stamp = this.#generation;
    let left = this.backends.length;
    for (let step = 0; step < points && left > 0; step++) {
      const owner = owners[(start + step) % points]!;
      if (seen[owner] === stamp) continue;
      const b = this.backends[owner]!;
      if (available(b, tried)) return b;
      seen[owner] = stamp;
      left--;
    }
    return undefined;
  }
}
