/**
 * The generated smuggling corpus (test/helpers/smuggling-corpus.ts) against
 * both HTTP/1 paths (the fast path and node:http). For every case: the
 * client gets a 4xx or a closed connection, a raw recording backend shows
 * that no extra or re-framed request reached it (never /smuggled), and the
 * next request, on another connection, is served. docs/reliability.md has
 * the counts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { answerEachHead, startRawServer, type RawServer } from '../helpers/backends.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { plain, rawExchange } from '../helpers/raw-http.js';
import { smugglingCorpus } from '../helpers/smuggling-corpus.js';

/** requestLines: the request lines in what the backend received. */
const requestLines = (bytes: Buffer): string[] => bytes.toString('latin1').match(/^[A-Z]+ \S+ HTTP\/1\.[01]\r?$/gm) ?? [];

describe('smuggling corpus', () => {
  let backend: RawServer;
  let fast: TestBalancer;
  let nodeHttp: TestBalancer;
  const corpus = smugglingCorpus();

  before(async () => {
    // Answers each request head with a 200 (an Upgrade too: a non-101 answer), never closing first.
    backend = await startRawServer(answerEachHead('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const config = (listen: object) => ({ backends: [`http://127.0.0.1:${backend.port}`], healthCheck: { enabled: false }, timeouts: { response: '1s' }, listen: { host: '127.0.0.1', port: 0, ...listen } });
    fast = await startBalancer(config({}));
    nodeHttp = await startBalancer(config({ fastPath: false }));
  });

  after(async () => {
    await Promise.all([fast, nodeHttp].filter(Boolean).map((lb) => lb.close()));
    await backend.close();
  });

  test(`the corpus covers every family (${corpus.length} cases)`, () => {
    const families = new Set(corpus.map((c) => c.family));
    for (const f of ['CL.TE', 'TE.CL', 'TE.TE', 'TE', 'CL', 'chunk', 'line ends', 'values', 'obs-fold', 'whitespace', 'target', 'host', 'upgrade']) assert.ok(families.has(f), f);
  });

  for (const [label, lb] of [['fast path', () => fast], ['node:http', () => nodeHttp]] as const) {
    test(`${label}: every case is refused or closed, nothing extra reaches the backend, and the next connection is served`, async () => {
      const failures: string[] = [];
      for (const c of corpus) {
        backend.received.length = 0;
        const answer = await rawExchange(plain(lb().port), c.bytes, 1500, 150);
        const lines = requestLines(Buffer.concat(backend.received));
        const refusedOrClosed = (answer.status >= 400 && answer.status < 500) || answer.closed;
        const what = `${c.family} / ${c.name}: status ${answer.status}, closed ${answer.closed}, backend saw ${JSON.stringify(lines)}`;
        if (!refusedOrClosed) failures.push(`${what}: neither a 4xx nor a close`);
        if (lines.length > c.allowed || lines.some((l) => l.includes('/smuggled'))) failures.push(`${what}: more reached the backend than allowed (${c.allowed})`);
        const next = await rawExchange(plain(lb().port), 'GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 1500);
        if (next.status !== 200) failures.push(`${c.family} / ${c.name}: the next connection got ${next.status}`);
      }
      assert.deepEqual(failures, []);
    });
  }
});
