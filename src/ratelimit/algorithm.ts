/** The algorithms by name: the memory store of a policy. */
import { MemoryStore } from './memory-store.js';
import { SlidingWindow, type SlidingWindowState } from './sliding-window.js';
import { TokenBucket, type TokenBucketState } from './token-bucket.js';
import type { RateLimitPolicy } from './types.js';

export type AnyMemoryStore = MemoryStore<TokenBucketState> | MemoryStore<SlidingWindowState>;

export function createMemoryStore(policy: RateLimitPolicy, maxKeys: number): AnyMemoryStore {
  return policy.algorithm === 'token-bucket'
    ? new MemoryStore(new TokenBucket(policy), maxKeys)
    : new MemoryStore(new SlidingWindow(policy), maxKeys);
}
