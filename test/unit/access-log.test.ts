import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAccessLog, type AccessEntry } from '../../src/observe/access-log.js';
import { createLogger, ownSink } from '../../src/observe/log.js';
import { waitFor } from '../helpers/balancer.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-access-log-'));

type Entry = [method: string, url: string, status: number, route: string, service: string, backend: string, client: string, ms: number, attempts: number, error: string | undefined];

/** line: an entry as the pipeline fills it, from its fields in order. */
const line = (method: string, url: string, status: number, route: string, service: string, backend: string, client: string, ms: number, attempts: number, error?: string): AccessEntry =>
  ({ method, url, status, route, service, backend, client, ms, attempts, error });

const entries: Entry[] = [
  ['GET', '/', 200, 'default', 'default', 'b1', '127.0.0.1', 0.532, 1, undefined],
  ['POST', '/a?q="quoted"&back=\\slash', 502, 'api "v2"', 'api', 'backend "two"', '::1', 12, 3, 'FULCRUM_ERR_UPSTREAM_CONNECT'],
  ['GET', '/ctl\u0001\u001f\u007f/tab\there', 400, 'none', 'none', 'none', '10.0.0.1', 0, 0, 'FULCRUM_ERR_BAD_REQUEST'],
  ['GET', '/caf\u00e9/\u00ff\u0080/\u2028\u2029/\ud83d\ude00', 404, 'routes[3]', 'caf\u00e9', 'b\u00e9', '2001:db8::1', 1.5, 1, undefined],
  ['DELETE', '', 204, '', '', '', '', 1e-3, 2, ''],
];

/** readLines: the file's lines so far (pino's destination opens the file asynchronously). */
const readLines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0) : []);
const withoutTime = (line: string): string => line.replace(/"time":"[^"]+"/, '"time":"T"');

test('lines written by the batched access log are exactly those pino writes, for the same logger fields', async () => {
  const own = join(dir, 'own.log');
  const logger = createLogger({ level: 'warn', destination: own }).child({ worker: 2 });
  const log = createAccessLog(logger);
  for (const e of entries) log.write(line(...e));
  log.close();
  await waitFor(() => readLines(own).length === entries.length, 3000);

  // The reference: pino itself, configured as createLogger configures it, through a child with type "access".
  const reference: string[] = [];
  const pinoLogger = pino({ level: 'warn', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, { write: (s: string) => { reference.push(s.trimEnd()); } });
  const pinoLog = createAccessLog(pinoLogger.child({ worker: 2 }));
  for (const e of entries) pinoLog.write(line(...e));

  const lines = readLines(own);
  assert.equal(lines.length, entries.length);
  assert.deepEqual(lines.map(withoutTime), reference.map(withoutTime));
  for (const [i, line] of lines.entries()) {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed.url, entries[i]![1]);
    assert.equal(parsed.pid, process.pid);
    assert.ok(Math.abs(Date.parse(parsed.time as string) - Date.now()) < 60_000);
  }
});

test('tunnel lines (bytesIn, bytesOut) written by the batched access log are exactly those pino writes', async () => {
  const own = join(dir, 'tunnel.log');
  const tunnels: [string, string, number, string, string, string, string, number, number, number, number][] = [
    ['GET', '/ws?room=1', 101, 'default', 'default', 'b1', '127.0.0.1', 1234.5, 1, 38, 0],
    ['GET', '/chat "quoted"', 101, 'chat', 'ws', 'dns-10.0.0.7-8080', '::1', 0.25, 2, 1_048_576, 77],
  ];
  const log = createAccessLog(createLogger({ level: 'warn', destination: own }));
  for (const [m, u, st, r, sv, b, c, ms, a, bytesIn, bytesOut] of tunnels) log.writeTunnel(line(m, u, st, r, sv, b, c, ms, a), bytesIn, bytesOut);
  log.close();
  await waitFor(() => readLines(own).length === tunnels.length, 3000);

  const reference: string[] = [];
  const pinoLogger = pino({ level: 'warn', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, { write: (s: string) => { reference.push(s.trimEnd()); } });
  const pinoLog = createAccessLog(pinoLogger);
  for (const [m, u, st, r, sv, b, c, ms, a, bytesIn, bytesOut] of tunnels) pinoLog.writeTunnel(line(m, u, st, r, sv, b, c, ms, a), bytesIn, bytesOut);
  assert.deepEqual(readLines(own).map(withoutTime), reference.map(withoutTime));
  assert.equal((JSON.parse(readLines(own)[1]!) as { bytesIn: number }).bytesIn, 1_048_576);
});

test('a line is written within a moment when traffic is light, without a close', async () => {
  const file = join(dir, 'light.log');
  const logger = createLogger({ level: 'info', destination: file });
  const log = createAccessLog(logger);
  log.write(line('GET', '/one', 200, 'default', 'default', 'b1', '127.0.0.1', 1, 1));
  await waitFor(() => readLines(file).length === 1, 3000);
  assert.equal((JSON.parse(readLines(file)[0]!) as { url: string }).url, '/one');
});

test('heavy traffic is handed over in batches, and nothing is lost or reordered', async () => {
  const file = join(dir, 'heavy.log');
  const logger = createLogger({ level: 'info', destination: file });
  // Count what reaches pino's destination: batches, not a write per line.
  const { sink } = ownSink(logger)!;
  const write = sink.write.bind(sink);
  let writes = 0;
  sink.write = (chunk: string) => { writes++; return write(chunk); };
  const log = createAccessLog(logger);
  for (let i = 0; i < 5000; i++) log.write(line('GET', `/r${i}`, 200, 'default', 'default', 'b1', '127.0.0.1', i, 1));
  log.close();
  assert.ok(writes >= 2 && writes <= 80, `5,000 lines (~1 MB) in ${writes} writes: expected 16 KiB batches`);
  await waitFor(() => readLines(file).length === 5000, 3000);
  const urls = readLines(file).map((l) => (JSON.parse(l) as { url: string }).url);
  assert.deepEqual(urls, Array.from({ length: 5000 }, (_, i) => `/r${i}`));
});

test('lines still batched when the process exits at once (a second signal) are written', () => {
  const file = join(dir, 'exit.log');
  const script = `
    const { createLogger } = await import(${JSON.stringify(new URL('../../src/observe/log.js', import.meta.url).href)});
    const { createAccessLog } = await import(${JSON.stringify(new URL('../../src/observe/access-log.js', import.meta.url).href)});
    const { openSync } = await import('node:fs');
    const fd = openSync(${JSON.stringify(file)}, 'w'); // a descriptor, as stdout is: ready at once
    const log = createAccessLog(createLogger({ level: 'info', destination: fd }));
    for (let i = 0; i < 300; i++) log.write('GET', '/x' + i, 200, 'default', 'default', 'b1', '127.0.0.1', 1, 1, undefined);
    setImmediate(() => process.exit(1));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 1, child.stderr);
  assert.equal(readLines(file).length, 300);
});
