/**
 * The HTTP/2 client's pool (upstream/h2-client.ts) driven directly, for the
 * orderings a proxy produces and a whole-system test hits only by chance.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { H2Pool } from '../../src/upstream/h2-client.js';
import type { UpstreamHandler, UpstreamRequest } from '../../src/upstream/dispatch.js';
import { freePort } from '../helpers/backends.js';

const OPTIONS = { connectTimeout: 0, headersTimeout: 0, bodyTimeout: 0, tls: null, fallback: null };

const request = (): UpstreamRequest => ({ method: 'GET', path: '/', headers: ['host', 'backend'], body: null });

/** handler: a request's outcome, its error or its status, with a hook run inside onError. */
function handler(onError: (err: Error) => void): UpstreamHandler {
  return {
    onConnect: () => undefined,
    onHeaders: () => true,
    onData: () => true,
    onComplete: () => undefined,
    onError,
  };
}

describe('H2Pool', () => {
  it('a request dispatched from a failed connect\'s onError fails too, instead of waiting on the dead session', async () => {
    // Nothing listens on a port freePort returns. A retry is dispatched from inside the failed attempt's onError, before the failed socket's 'close'.
    // No connect timeout is set: only the pool can end the second request.
    const pool = new H2Pool(new URL(`h2c://127.0.0.1:${await freePort()}`), OPTIONS);
    try {
      const second = await new Promise<Error>((resolve, reject) => {
        pool.dispatch(request(), handler(() => {
          pool.dispatch(request(), handler(resolve));
        }));
        setTimeout(() => reject(new Error('the second request never ended')), 3000).unref();
      });
      assert.equal((second as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      // Both sessions leave the pool once their sockets have closed.
      for (let i = 0; i < 100 && pool.sessions > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(pool.sessions, 0);
    } finally {
      await pool.destroy();
    }
  });
});
