/**
 * HTTP/2 field validation (issue 19 defect 10, RFC 9113 8.2.1): what node's
 * HTTP/2 (nghttp2) does itself with malformed fields, before any JS sees
 * them, pinned with raw frames and hand-built HPACK literals, and a
 * recording backend showing that no such field is ever forwarded. Fields
 * nghttp2 drops leave no trace in what the compatibility API hands over
 * (the same rawHeaders as without them), so Fulcrum cannot reset those
 * streams itself; docs/reliability.md records the behaviour. If a Node
 * upgrade let one through, these tests fail.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { Flag, FrameType, frame, h2Exchange, requestBlock } from '../helpers/h2-frames.js';

/** The cases: a field, and what node does with it (dropped: the request goes on without it; reset: PROTOCOL_ERROR). */
const CASES: readonly (readonly [string, string, string, 'dropped' | 'reset'])[] = [
  ['value with CR', 'x-a', 'a\rb', 'dropped'],
  ['value with LF', 'x-a', 'a\nb', 'dropped'],
  ['value with NUL', 'x-a', 'a\0b', 'dropped'],
  ['value with leading space', 'x-a', ' v', 'dropped'],
  ['value with trailing tab', 'x-a', 'v\t', 'dropped'],
  ['value with DEL', 'x-a', 'a\x7fb', 'dropped'],
  ['name with CR', 'x-\ra', 'v', 'dropped'],
  ['name with LF', 'x-\na', 'v', 'dropped'],
  ['name with a colon', 'x:a', 'v', 'dropped'],
  ['name with a space', 'x a', 'v', 'dropped'],
  ['empty name', '', 'v', 'dropped'],
  ['upper-case name', 'X-A', 'v', 'reset'],
  ['connection-specific field', 'connection', 'close', 'reset'],
  ['te other than trailers', 'te', 'gzip', 'reset'],
  ['transfer-encoding', 'transfer-encoding', 'chunked', 'reset'],
];

describe('HTTP/2 malformed fields', () => {
  let backend: http.Server;
  const received: string[][] = [];
  let lb: TestBalancer;

  before(async () => {
    backend = http.createServer((req, res) => { received.push(req.rawHeaders); res.end('ok'); });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    lb = await startBalancer({ backends: [`http://127.0.0.1:${(backend.address() as AddressInfo).port}`], healthCheck: { enabled: false }, listen: { host: '127.0.0.1', port: 0, http2: true } });
  });

  after(async () => {
    await lb?.close();
    backend.close();
  });

  for (const [label, name, value, outcome] of CASES) {
    test(`${label}: ${outcome === 'reset' ? 'the stream is reset with PROTOCOL_ERROR, nothing forwarded' : 'never forwarded'}`, async () => {
      received.length = 0;
      const block = requestBlock('/fields', 'x', [['x-first', '1'], [name, value], ['x-last', '2']]);
      const answer = await h2Exchange(lb.port, frame(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, 1, block));
      if (outcome === 'reset') {
        assert.ok(answer.frames.includes('RST_STREAM(1,PROTOCOL_ERROR)'), answer.frames.join(' '));
        assert.equal(received.length, 0);
        return;
      }
      assert.ok(answer.frames.includes('HEADERS(1)'), answer.frames.join(' '));
      assert.equal(received.length, 1);
      const fields = received[0]!;
      for (let i = 0; i < fields.length; i += 2) {
        assert.doesNotMatch(fields[i]!, /[\0\r\n: ]/, `a forwarded name: ${JSON.stringify(fields[i])}`);
        assert.doesNotMatch(fields[i + 1]!, /[\0\r\n]|^[ \t]|[ \t]$/, `a forwarded value: ${JSON.stringify(fields[i + 1])}`);
      }
      // The neighbours arrive: only the malformed field is gone.
      assert.ok(fields.includes('x-first') && fields.includes('x-last'), JSON.stringify(fields));
      assert.ok(!fields.some((f, i) => i % 2 === 0 && f.toLowerCase() === 'x-a'), JSON.stringify(fields));
    });
  }
});
