/**
 * Trace and span ids for requests that are not sampled (request-trace.ts):
 * random, W3C-valid (lower-case hex, not all zeros), cut from a pool of
 * random bytes filled 4 KiB at a time, which costs far less per id than a
 * crypto call or the SDK's generator with its validity checks.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;

function randomHex(bytes: number): string {
  for (;;) {
    if (used + bytes > POOL_BYTES) {
      randomFillSync(pool);
      used = 0;
    }
    const start = used;
    used += bytes;
    let zero = true;
    for (let i = start; i < used; i++) if (pool[i] !== 0) { zero = false; break; }
    // An all-zero id is invalid (W3C Trace Context): draw again.
    if (!zero) return pool.toString('hex', start, used);
  }
}

/** randomTraceId: 16 random bytes as 32 hex digits. */
export function randomTraceId(): string {
  return randomHex(16);
}

/** randomSpanId: 8 random bytes as 16 hex digits. */
export function randomSpanId(): string {
  return randomHex(8);
}
