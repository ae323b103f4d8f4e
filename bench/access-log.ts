/**
 * `npm run bench:access-log`: the CPU cost of one access-log line, written
 * the way Fulcrum writes it (src/observe/access-log.ts: formatted here,
 * handed to pino's destination in batches) against pino's own path
 * (`logger.child({ type: 'access' }).info(fields)`), both to /dev/null.
 *
 * CPU time is the process's (process.cpuUsage), which includes the
 * asynchronous writes done on libuv's threads. Lines are written 1,000 per
 * turn of the event loop, as requests finish in a busy balancer.
 *
 * Usage: node dist/bench/access-log.js [--lines 300000] [--rounds 3]
 */
import { openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createAccessLog, type AccessLog } from '../src/observe/access-log.js';
import { createLogger } from '../src/observe/log.js';

const { values: args } = parseArgs({
  options: {
    lines: { type: 'string', default: '300000' },
    rounds: { type: 'string', default: '3' },
  },
});
const LINES = Number(args.lines);
const ROUNDS = Number(args.rounds);

/** The same fields a proxied request logs (one object, reused, as the pipeline does); the latency varies so that numbers are formatted afresh. */
const entry = { method: 'GET', url: '/api/items?page=2', status: 200, route: 'default', service: 'default', backend: 'b1', client: '127.0.0.1', ms: 0, attempts: 1, error: undefined, retryReasons: null, ids: null, proto: '1.1', upstreamProto: '1.1', grpcStatus: -1 };

async function writeLines(log: AccessLog, n: number): Promise<void> {
  for (let done = 0; done < n; done += 1000) {
    for (let i = 0; i < 1000; i++) {
      entry.ms = Math.round((done + i) * 1.37) / 1000;
      log.write(entry);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function cpuPerLine(log: AccessLog): Promise<number> {
  await writeLines(log, Math.min(LINES, 50_000)); // warm-up
  const before = process.cpuUsage();
  await writeLines(log, LINES);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / LINES;
}

const devNull = (): number => openSync('/dev/null', 'w');
// Fulcrum's own logger: the batched path.
const batched = createAccessLog(createLogger({ level: 'info', destination: devNull() }));
// Any other pino logger (here configured as Fulcrum's is): lines go through pino's serializer.
const throughPino = createAccessLog(pino({ level: 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: devNull(), sync: false })));

const results: Record<string, number[]> = { 'batched (Fulcrum\'s logger)': [], 'through pino (another logger)': [] };
for (let r = 0; r < ROUNDS; r++) {
  results['batched (Fulcrum\'s logger)']!.push(await cpuPerLine(batched));
  results['through pino (another logger)']!.push(await cpuPerLine(throughPino));
}
batched.close();
throughPino.close();
for (const [name, xs] of Object.entries(results)) {
  const sorted = [...xs].sort((a, b) => a - b);
  console.log(`${name.padEnd(32)} ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} CPU-µs/line (${sorted[0]!.toFixed(2)}-${sorted[sorted.length - 1]!.toFixed(2)}), ${LINES} lines x ${ROUNDS} rounds`);
}
