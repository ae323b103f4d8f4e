/**
 * Picker micro-benchmark: picks per CPU-second of every policy for 3, 30
 * and 300 backends, on one core, without I/O. Backends carry uneven in-flight
 * counts, latencies and weights so that no policy takes a shortcut a real
 * pool would not offer; hash policies see 1024 different keys in turn.
 *
 *   npm run bench:pickers             a table
 *   npm run bench:pickers -- --json   JSON, one record per policy and size
 */
import { Backend } from '../src/backends/backend.js';
import { Reason } from '../src/backends/reasons.js';
import type { PickContext, Picker, PickerOptions } from '../src/balancer/picker.js';
import { seededRandom } from '../src/balancer/prng.js';
import { getPickerFactory, knownAlgorithms } from '../src/balancer/registry.js';
import { StickySessions } from '../src/balancer/sticky.js';

const SIZES = [3, 30, 300] as const;
const WARMUP_MS = 150;
const MEASURE_MS = 500;
const KEYS = 1024;

interface Case {
  readonly name: string;
  readonly build: (backends: readonly Backend[]) => Picker;
  /** cookie: sticky cases send a valid pin for one backend. */
  readonly sticky?: StickySessions;
}

interface Result {
  policy: string;
  backends: number;
  picksPerSecond: number;
  nsPerPick: number;
}

function makeBackends(n: number): Backend[] {
  const rnd = seededRandom(n);
  const out: Backend[] = [];
  for (let i = 0; i < n; i++) {
    const b = new Backend({ id: `b${i}`, config: { url: `http://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080`, weight: 1 + (i % 3), healthy: true } });
    b.state.inflight = Math.floor(rnd() * 20);
    b.state.latencyEwma = 5 + rnd() * 50;
    b.state.healthySince = Date.now() - 3_600_000;
    out.push(b);
  }
  // One backend in ten is out, as in a pool with some failures.
  for (let i = 0; i < n; i += 10) out[i]!.setReason(Reason.ACTIVE_CHECK_FAILED, true);
  return out;
}

function cases(): Case[] {
  const options: PickerOptions = { hashKey: 'ip', slowStart: 0, p2c: { ewma: false } };
  const out: Case[] = knownAlgorithms().map((name) => ({ name, build: (bs: readonly Backend[]) => getPickerFactory(name)!.build(bs, options) }));
  out.push({ name: 'p2c (ewma)', build: (bs) => getPickerFactory('p2c')!.build(bs, { ...options, p2c: { ewma: true } }) });
  out.push({ name: 'weighted-round-robin (slowStart)', build: (bs) => getPickerFactory('weighted-round-robin')!.build(bs, { ...options, slowStart: 30_000 }) });
  const sticky = new StickySessions({ cookie: 'lb', ttl: 0, secret: 'bench' }, 'bench');
  out.push({ name: 'round-robin + sticky (pinned)', sticky, build: (bs) => sticky.wrap(getPickerFactory('round-robin')!.build(bs, options), bs) });
  return out;
}

function contexts(backends: readonly Backend[], sticky: StickySessions | undefined): PickContext[] {
  const out: PickContext[] = [];
  for (let i = 0; i < KEYS; i++) {
    const pinned = backends[(i * 7 + 1) % backends.length]!;
    out.push({
      clientAddress: `192.0.${(i >> 8) & 255}.${i & 255}`,
      hashKey: `user-${i}`,
      tried: undefined,
      cookie: sticky === undefined ? undefined : `session=abc; lb=${sticky.tokenOf(pinned)}`,
    });
  }
  return out;
}

/**
 * run picks in batches until `ms` of CPU time have passed; returns picks per
 * CPU-second. CPU time, not wall time, so that other processes sharing the
 * machine do not show up as a slower picker.
 */
function run(picker: Picker, ctxs: readonly PickContext[], ms: number): number {
  let picks = 0;
  let sink = 0;
  const start = process.cpuUsage();
  let usedMicros = 0;
  while (usedMicros < ms * 1000) {
    for (let i = 0; i < 10_000; i++) {
      const b = picker.pick(ctxs[i & (KEYS - 1)]!);
      if (b !== undefined) sink++;
    }
    picks += 10_000;
    const used = process.cpuUsage(start);
    usedMicros = used.user + used.system;
  }
  if (sink === 0) throw new Error('the picker never chose a backend');
  return picks / (usedMicros / 1e6);
}

function main(): void {
  const json = process.argv.includes('--json');
  const results: Result[] = [];
  for (const c of cases()) {
    for (const n of SIZES) {
      const backends = makeBackends(n);
      const picker = c.build(backends);
      const ctxs = contexts(backends, c.sticky);
      run(picker, ctxs, WARMUP_MS);
      const rate = run(picker, ctxs, MEASURE_MS);
      results.push({ policy: c.name, backends: n, picksPerSecond: Math.round(rate), nsPerPick: Math.round(1e9 / rate) });
    }
  }
  if (json) {
    console.log(JSON.stringify({ node: process.version, results }, null, 2));
    return;
  }
  const header = ['policy', ...SIZES.map((n) => `${n} backends`)];
  const rows = cases().map((c) => [c.name, ...SIZES.map((n) => {
    const r = results.find((x) => x.policy === c.name && x.backends === n)!;
    return `${(r.picksPerSecond / 1e6).toFixed(2)} M/s (${r.nsPerPick} ns)`;
  })]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`picks per CPU-second (ns of CPU per pick), node ${process.version}`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

main();
