/**
 * hash32 is MurmurHash3 (x86, 32-bit) over a string's UTF-16 code units.
 * It is fast, spreads similar strings (".../b1#0", ".../b1#1") evenly over
 * the ring, and is the same in every process and version, so that several
 * balancer instances send a given key to the same backend.
 */
export function hash32(s: string, seed = 0): number {
  let h = seed | 0;
  const len = s.length;
  let i = 0;
  for (; i + 1 < len; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < len) {
    let k = s.charCodeAt(i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= len * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
