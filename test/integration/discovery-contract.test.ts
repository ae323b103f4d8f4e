/**
 * The DiscoverySource contract (src/discovery/source.ts), one suite run
 * against every source: static, DNS (a real DNS server on loopback) and
 * Kubernetes (the real client against a fake API server). A fixture says
 * how to change what its source sees and how to make it fail; what a
 * source cannot do (the static list neither changes nor fails) is skipped,
 * and reported as skipped.
 */
import { test, describe, afterEach, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import { DnsSource } from '../../src/discovery/dns.js';
import { KubernetesSource } from '../../src/discovery/kubernetes.js';
import { StaticSource } from '../../src/discovery/static.js';
import type { BackendSpec, DiscoverySource } from '../../src/discovery/source.js';
import { silentLogger } from '../../src/observe/log.js';
import { startDnsServer, type AddressRecord, type TestDnsServer } from '../helpers/dns-server.js';
import { startFakeKube, type FakeKube, type SliceEndpoint } from '../helpers/fake-kube.js';

/** One way of making a source fail, and of ending that failure. */
interface FailureMode {
  readonly name: string;
  fail(): Promise<void> | void;
  recover(): Promise<void> | void;
}

interface ContractFixture {
  readonly source: DiscoverySource;
  /** setA: the URLs the source sees when it starts. */
  readonly setA: readonly string[];
  /**
   * change: toB makes the source see setB, toA brings set A back, each in
   * one step (so that every snapshot is A or B, never a legitimate
   * in-between); undefined: the source cannot change. setB keeps at least
   * one URL of A, drops one and adds one.
   */
  readonly change: { readonly setB: readonly string[]; toB(): Promise<void> | void; toA(): Promise<void> | void } | undefined;
  /** failures: the ways this source can be made to fail; empty: it cannot fail. */
  readonly failures: readonly FailureMode[];
  close(): Promise<void>;
}

/** The bounds of the suite: every wait polls, and no test runs near its timeout. */
const WAIT_MS = 3000;
const POLL_MS = 10;
const STOP_WITHIN_MS = 2000;
const PROMPT_MS = 500;
/** QUIET_MS: long enough for a few refreshes (100ms DNS interval, 250-500ms Kubernetes backoff). */
const QUIET_MS = 600;
const TEST_TIMEOUT_MS = 5000;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, condition: () => boolean, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

const urlsOf = (specs: readonly BackendSpec[]): string[] => specs.map((s) => s.url).sort();
const sorted = (urls: readonly string[]): string[] => [...urls].sort();

/** Run is one start() of a source: every snapshot (copied), and how start() ended. */
class Run {
  readonly snapshots: BackendSpec[][] = [];
  /** afterAbort counts the snapshots reported once the signal had aborted. */
  afterAbort = 0;
  readonly controller = new AbortController();
  outcome: 'running' | 'resolved' | 'rejected' = 'running';
  error: unknown;
  readonly done: Promise<void>;

  constructor(readonly source: DiscoverySource, signal: AbortSignal = new AbortController().signal) {
    const abort = (): void => this.controller.abort();
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    this.done = source.start((specs) => {
      if (this.controller.signal.aborted) this.afterAbort++;
      this.snapshots.push(specs.map((s) => ({ ...s })));
    }, this.controller.signal).then(
      () => { this.outcome = 'resolved'; },
      (err: unknown) => { this.outcome = 'rejected'; this.error = err; },
    );
  }

  get last(): BackendSpec[] | undefined {
    return this.snapshots.at(-1);
  }

  async first(): Promise<BackendSpec[]> {
    await until(`the first snapshot from ${this.source.name}`, () => this.snapshots.length > 0);
    return this.snapshots[0]!;
  }

  /** stop aborts and waits, bounded; it says how long start() took to settle. */
  async stop(): Promise<number> {
    const at = Date.now();
    this.controller.abort();
    await Promise.race([this.done, delay(STOP_WITHIN_MS + 1000)]);
    return Date.now() - at;
  }
}

function assertWellFormed(specs: readonly BackendSpec[], where: string): void {
  for (const spec of specs) {
    const label = `${where}: ${JSON.stringify(spec)}`;
    assert.equal(typeof spec.id, 'string', label);
    assert.ok(spec.id.length > 0, `${label}: empty id`);
    assert.equal(typeof spec.url, 'string', label);
    let url: URL;
    assert.doesNotThrow(() => { url = new URL(spec.url); }, `${label}: url does not parse`);
    assert.ok(url!.protocol === 'http:' || url!.protocol === 'https:', `${label}: not an http(s) URL`);
    assert.ok(url!.hostname !== '', `${label}: no host`);
    assert.equal(typeof spec.weight, 'number', label);
    assert.ok(Number.isFinite(spec.weight) && spec.weight >= 0, `${label}: weight must be a number >= 0`);
    assert.ok(spec.state === 'ready' || spec.state === 'terminating', `${label}: state`);
  }
}

function assertUniqueIds(specs: readonly BackendSpec[], where: string): void {
  const ids = specs.map((s) => s.id);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  assert.deepEqual(duplicates, [], `${where}: ids repeated within one snapshot`);
}

function describeDiscoverySourceContract(name: string, makeFixture: () => Promise<ContractFixture>): void {
  describe(`DiscoverySource contract: ${name}`, () => {
    let fixture: ContractFixture | undefined;
    const runs: Run[] = [];
    const setUp = async (): Promise<ContractFixture> => {
      fixture = await makeFixture();
      return fixture;
    };
    const run = (source: DiscoverySource, signal?: AbortSignal): Run => {
      const r = new Run(source, signal);
      runs.push(r);
      return r;
    };
    afterEach(async () => {
      await Promise.all(runs.splice(0).map((r) => r.stop()));
      await fixture?.close();
      fixture = undefined;
    });
    const options = { timeout: TEST_TIMEOUT_MS };

    test('name and target are non-empty strings; lastError is null before start and while healthy', options, async () => {
      const { source } = await setUp();
      assert.equal(typeof source.name, 'string');
      assert.ok(source.name.length > 0, 'name');
      assert.equal(typeof source.target, 'string');
      assert.ok(source.target.length > 0, 'target');
      assert.equal(source.lastError, null, 'before start');
      const r = run(source);
      await r.first();
      assert.equal(source.lastError, null, 'after the first snapshot');
      await delay(QUIET_MS);
      assert.equal(source.lastError, null, 'a while later, still healthy');
      assert.ok(source.target.length > 0, 'target, once started');
    });

    test('the first snapshot is the complete current set, every spec well formed', options, async () => {
      const { source, setA } = await setUp();
      const r = run(source);
      const first = await r.first();
      assert.deepEqual(urlsOf(first), sorted(setA), 'complete, not a delta');
      assertWellFormed(first, 'first snapshot');
    });

    test('after a change the next snapshot is complete again, and an endpoint in both keeps its id', options, async (t: TestContext) => {
      const { source, setA, change } = await setUp();
      if (change === undefined) return t.skip(`${name} source cannot change what it sees`);
      const r = run(source);
      const first = await r.first();
      await change.toB();
      await until('a snapshot of set B', () => r.last !== undefined && urlsOf(r.last).join() === sorted(change.setB).join());
      for (const [i, s] of r.snapshots.entries()) {
        const urls = urlsOf(s).join();
        assert.ok(urls === sorted(setA).join() || urls === sorted(change.setB).join(), `snapshot ${i} is neither set A nor set B (partial or a delta): ${urls}`);
        assertWellFormed(s, `snapshot ${i}`);
      }
      const next = r.last!;
      const kept = setA.filter((u) => change.setB.includes(u));
      assert.ok(kept.length > 0, 'the fixture keeps an endpoint across the change');
      for (const url of kept) {
        assert.equal(next.find((s) => s.url === url)?.id, first.find((s) => s.url === url)?.id, `the id of ${url}`);
      }
    });

    test('ids are unique within a snapshot', options, async () => {
      const { source, change } = await setUp();
      const r = run(source);
      await r.first();
      if (change !== undefined) {
        await change.toB();
        await until('a snapshot of set B', () => r.last !== undefined && urlsOf(r.last).join() === sorted(change.setB).join());
      }
      for (const [i, s] of r.snapshots.entries()) assertUniqueIds(s, `snapshot ${i}`);
    });

    test('on failure: lastError is set, no empty or partial snapshot, and recovery brings a complete snapshot and lastError null', options, async (t: TestContext) => {
      const { source, setA, change, failures } = await setUp();
      if (failures.length === 0) return t.skip(`${name} source cannot fail`);
      const r = run(source);
      await r.first();
      // Each failure mode in turn, on the same run: a source survives one outage after another.
      // (Not subtests: node:test would run this suite's afterEach after each, closing the fixture.)
      let expected = sorted(setA);
      for (const [i, mode] of failures.entries()) {
        const before = r.snapshots.length;
        await mode.fail();
        await until(`lastError (${mode.name})`, () => source.lastError !== null);
        assert.equal(typeof source.lastError, 'string', mode.name);
        assert.ok(source.lastError!.length > 0, `${mode.name}: lastError is empty`);
        await delay(QUIET_MS);
        assert.ok(source.lastError !== null, `${mode.name}: lastError stays set during the outage`);
        for (const s of r.snapshots.slice(before)) {
          assert.deepEqual(urlsOf(s), expected, `${mode.name}: a snapshot during the outage must be the last good set, never an empty or partial one`);
        }
        // What changes during the outage shows after it (Kubernetes reports only what changed).
        const target = change !== undefined && i % 2 === 0 ? sorted(change.setB) : sorted(setA);
        if (change !== undefined) await (i % 2 === 0 ? change.toB() : change.toA());
        const seen = r.snapshots.length;
        await mode.recover();
        await until(`a complete snapshot after recovery (${mode.name})`, () => r.snapshots.length > seen && urlsOf(r.last!).join() === target.join());
        await until(`lastError back to null (${mode.name})`, () => source.lastError === null);
        assertWellFormed(r.last!, `after recovery (${mode.name})`);
        expected = target;
      }
    });

    test('start() resolves soon after the signal aborts, and no snapshot comes after', options, async () => {
      const { source, change } = await setUp();
      const r = run(source);
      await r.first();
      const took = await r.stop();
      assert.equal(r.outcome, 'resolved', `start() ${r.outcome}${r.error === undefined ? '' : `: ${String(r.error)}`}`);
      assert.ok(took <= STOP_WITHIN_MS, `start() took ${took}ms to resolve after the abort`);
      await change?.toB();
      await delay(QUIET_MS);
      assert.equal(r.afterAbort, 0, 'snapshots after the abort');
    });

    test('start() aborted before its first snapshot resolves soon, and reports nothing after', options, async () => {
      const { source } = await setUp();
      const r = run(source);
      // Abort while the first lookup, list or watch is in flight.
      await delay(1);
      const took = await r.stop();
      assert.equal(r.outcome, 'resolved', `start() ${r.outcome}${r.error === undefined ? '' : `: ${String(r.error)}`}`);
      assert.ok(took <= STOP_WITHIN_MS, `start() took ${took}ms to resolve after the abort`);
      await delay(QUIET_MS);
      assert.equal(r.afterAbort, 0, 'snapshots after the abort');
    });

    test('start() aborted during an outage resolves soon, and reports nothing after', options, async (t: TestContext) => {
      const { source, failures } = await setUp();
      if (failures.length === 0) return t.skip(`${name} source cannot fail`);
      for (const mode of failures) {
        const r = run(source);
        await until(`a snapshot (${mode.name})`, () => r.snapshots.length > 0 && source.lastError === null);
        await mode.fail();
        await until(`lastError (${mode.name})`, () => source.lastError !== null);
        const took = await r.stop();
        assert.equal(r.outcome, 'resolved', `${mode.name}: start() ${r.outcome}${r.error === undefined ? '' : `: ${String(r.error)}`}`);
        assert.ok(took <= STOP_WITHIN_MS, `${mode.name}: start() took ${took}ms to resolve after the abort`);
        await mode.recover();
        await delay(QUIET_MS);
        assert.equal(r.afterAbort, 0, `${mode.name}: snapshots after the abort`);
      }
    });

    test('start() with an already-aborted signal resolves promptly and reports nothing', options, async () => {
      const { source } = await setUp();
      const aborted = AbortSignal.abort();
      const at = Date.now();
      const r = run(source, aborted);
      await Promise.race([r.done, delay(STOP_WITHIN_MS)]);
      const took = Date.now() - at;
      assert.equal(r.outcome, 'resolved', `start() ${r.outcome}${r.error === undefined ? '' : `: ${String(r.error)}`}`);
      assert.ok(took <= PROMPT_MS, `start() took ${took}ms with a signal aborted already`);
      await delay(QUIET_MS / 2);
      assert.equal(r.snapshots.length, 0, 'snapshots');
    });
  });
}

// --- static -----------------------------------------------------------------

describeDiscoverySourceContract('static', async () => {
  // A string, a weight of 0, an explicit id: the shapes a config's `backends` takes. The id is the one the
  // second backend would get automatically, so an automatic id that repeated it would show.
  const { backends } = validateConfig({ backends: ['http://127.0.0.1:18001', { url: 'http://127.0.0.1:18002', weight: 0 }, { id: 'b2', url: 'http://127.0.0.1:18003' }] });
  return {
    source: new StaticSource(backends),
    setA: backends.map((b) => b.url),
    change: undefined,
    failures: [],
    close: async () => undefined,
  };
});

// --- DNS --------------------------------------------------------------------

describeDiscoverySourceContract('dns', async () => {
  const NAME = 'contract.test';
  const PORT = 8080;
  const a = (...hosts: string[]): AddressRecord[] => hosts.map((address) => ({ address }));
  // Set A lists one address twice (a sloppy zone); B keeps .2, drops .1, adds .3.
  let records = a('127.0.0.1', '127.0.0.2', '127.0.0.2');
  let dns: TestDnsServer | undefined = await startDnsServer();
  const port = dns.port;
  const publish = (next: AddressRecord[]): void => {
    records = next;
    dns?.set(NAME, { A: records });
  };
  publish(records);
  const config = validateConfig({ discovery: { dns: { name: NAME, type: 'A', port: PORT, interval: '100ms', servers: [dns.server] } } }).discovery!.dns!;
  const url = (host: string): string => `http://${host}:${PORT}`;
  return {
    source: new DnsSource(config, silentLogger()),
    setA: [url('127.0.0.1'), url('127.0.0.2')],
    change: { setB: [url('127.0.0.2'), url('127.0.0.3')], toB: () => publish(a('127.0.0.2', '127.0.0.3')), toA: () => publish(a('127.0.0.1', '127.0.0.2')) },
    failures: [
      { name: 'the server answers SERVFAIL', fail: () => { dns!.failing = true; }, recover: () => { dns!.failing = false; } },
      {
        name: 'the server is stopped',
        fail: async () => { await dns?.close(); dns = undefined; },
        recover: async () => {
          dns = await startDnsServer(port);
          publish(records);
        },
      },
    ],
    close: async () => { await dns?.close(); dns = undefined; },
  };
});

// --- Kubernetes -------------------------------------------------------------

describeDiscoverySourceContract('kubernetes', async () => {
  const kube: FakeKube = await startFakeKube();
  const kubeconfig = kube.writeKubeconfig('shop');
  const PORT = 8080;
  const slice = (name: string, ips: string[], extra: SliceEndpoint[] = []): void => {
    kube.apply({ name, service: 'web', namespace: 'shop', endpoints: [...ips.map((ip) => ({ ip })), ...extra], ports: [{ name: 'http', port: PORT }] });
  };
  // Set A: one address in two slices (as during a move), plus a terminating endpoint, which stays listed as such.
  const web1 = (ips: string[]): void => slice('web-1', ips, [{ ip: '10.0.0.9', ready: false, terminating: true }]);
  web1(['10.0.0.1', '10.0.0.2']);
  slice('web-2', ['10.0.0.2']);
  // Another Service's slice, which the source must leave out.
  kube.apply({ name: 'other', service: 'other', namespace: 'shop', endpoints: [{ ip: '10.0.0.8' }], ports: [{ name: 'http', port: PORT }] });
  const url = (host: string): string => `http://${host}:${PORT}`;
  const config = validateConfig({ discovery: { kubernetes: { service: 'web', namespace: 'shop', port: 'http', kubeconfig } } }).discovery!.kubernetes!;
  const outage = (failWith: number | 'reset'): FailureMode => ({
    name: failWith === 'reset' ? 'the API server closes every connection' : `the API server answers ${failWith}`,
    fail: () => { kube.failWith = failWith; kube.dropWatches(); },
    recover: () => { kube.failWith = null; },
  });
  return {
    source: new KubernetesSource(config, silentLogger()),
    setA: [url('10.0.0.1'), url('10.0.0.2'), url('10.0.0.9')],
    // One slice changes: .1 leaves, .3 joins, .2 stays (listed in web-2 as well).
    change: { setB: [url('10.0.0.2'), url('10.0.0.3'), url('10.0.0.9')], toB: () => web1(['10.0.0.2', '10.0.0.3']), toA: () => web1(['10.0.0.1', '10.0.0.2']) },
    failures: [outage(500), outage('reset')],
    close: async () => {
      await kube.close();
      rmSync(dirname(kubeconfig), { recursive: true, force: true });
    },
  };
});
