/**
 * Real Redis deployments for tests, beside the single server of redis.ts:
 * a Sentinel set (a master, its replicas and three Sentinels, quorum 2)
 * and a 3-master Redis Cluster. Every process listens on a free loopback
 * port, keeps its files in a temporary directory and is stopped by PID.
 * Timeouts are small (down-after 1s, cluster-node-timeout 1s) so that a
 * failover or a cluster start takes seconds, not minutes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Redis } from 'ioredis';
import { freePort } from './backends.js';
import { redisBinary, redisProcess as server, type Server } from './redis.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** command runs one command on 127.0.0.1:port with a short-lived connection. */
export async function command(port: number, ...args: (string | number)[]): Promise<unknown> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: true });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    c.disconnect();
  }
}

const serverArgs = (port: number, dir: string, extra: string[] = []): string[] => [
  '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
  '--daemonize', 'no', '--loglevel', 'warning', ...extra,
];

export interface TestSentinel {
  readonly mode: 'sentinel';
  /** config: the `state.redis` settings (without keyPrefix). */
  readonly config: { sentinels: { host: string; port: number }[]; name: string };
  /** url: the same as a redis+sentinel:// URL (the REDIS_URL form). */
  readonly url: string;
  readonly external: false;
  readonly name: string;
  /** servers: the master first, then the replicas (as started; a failover changes which is master). */
  readonly servers: readonly Server[];
  readonly sentinels: readonly Server[];
  /** masterPort asks a Sentinel which server is the master now. */
  masterPort(): Promise<number>;
  /** killMaster kills the current master and resolves with its port. */
  killMaster(): Promise<number>;
  /** failedOver waits until the Sentinels name a master other than `oldPort`, and it answers as one. */
  failedOver(oldPort: number, timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

/** startSentinel: one master, `replicas` replicas, three Sentinels with quorum 2, all known to each other before it resolves. */
export async function startSentinel(replicas = 1): Promise<TestSentinel> {
  const bin = redisBinary();
  const sentinelBin = redisBinary('redis-sentinel');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-sentinel-'));
  const name = 'fulcrum-test';
  const ports: number[] = [];
  for (let i = 0; i <= replicas; i++) ports.push(await freePort());
  const servers = ports.map((port, i) => {
    const d = join(dir, `redis-${i}`);
    mkdirSync(d);
    // No 5s wait before a diskless full sync: a replica is in sync within a few ms.
    const replication = ['--repl-diskless-sync-delay', '0', ...(i === 0 ? [] : ['--replicaof', '127.0.0.1', String(ports[0])])];
    return server(bin, port, () => serverArgs(port, d, replication), 'redis-server');
  });
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  const sentinels = sentinelPorts.map((port, i) => {
    const file = join(dir, `sentinel-${i}.conf`);
    // Sentinel rewrites its config file (what it learns), so each gets its own, written once.
    writeFileSync(file, [
      `port ${port}`, 'bind 127.0.0.1', 'daemonize no', `dir ${dir}`, 'loglevel warning',
      `sentinel monitor ${name} 127.0.0.1 ${ports[0]} 2`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 3000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'));
    return server(sentinelBin, port, () => [file], 'redis-sentinel');
  });
  const stopAll = async (): Promise<void> => {
    await Promise.all([...sentinels, ...servers].map((s) => s.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(servers.map((s) => s.start()));
    await until(async () => (String(await command(ports[0]!, 'INFO', 'replication')).match(/state=online/g) ?? []).length === replicas, 10_000, 'the replicas to sync');
    await Promise.all(sentinels.map((s) => s.start()));
    // Each Sentinel must know the replicas and the two other Sentinels, or it cannot fail over.
    await until(async () => {
      for (const port of sentinelPorts) {
        const flat = (await command(port, 'SENTINEL', 'MASTER', name)) as string[];
        const info = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) info.set(flat[i]!, flat[i + 1]!);
        if (info.get('num-slaves') !== String(replicas) || info.get('num-other-sentinels') !== '2') return false;
      }
      return true;
    }, 15_000, 'the Sentinels to discover each other');
  } catch (err) {
    await stopAll();
    throw err;
  }
  const masterPort = async (): Promise<number> => {
    for (const s of sentinels) {
      if (!s.running) continue;
      try {
        const addr = (await command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as [string, string];
        return Number(addr[1]);
      } catch { /* ask the next one */ }
    }
    throw new Error('no Sentinel answered');
  };
  const sentinelConfig = sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
  return {
    mode: 'sentinel',
    config: { sentinels: sentinelConfig, name },
    url: `redis+sentinel://${sentinelConfig.map((s) => `${s.host}:${s.port}`).join(',')}/${name}`,
    external: false,
    name,
    servers,
    sentinels,
    masterPort,
    async killMaster() {
      const port = await masterPort();
      await servers.find((s) => s.port === port)!.kill();
      return port;
    },
    async failedOver(oldPort, timeoutMs = 20_000) {
      let now = oldPort;
      await until(async () => {
        now = await masterPort();
        if (now === oldPort) return false;
        const role = (await command(now, 'ROLE')) as unknown[];
        return role[0] === 'master';
      }, timeoutMs, 'the Sentinels to promote a replica');
      return now;
    },
    close: stopAll,
  };
}

export interface TestCluster {
  readonly mode: 'cluster';
  readonly config: { cluster: { host: string; port: number }[] };
  readonly external: false;
  readonly nodes: readonly Server[];
  /** stop kills every node (an outage); start brings them back with their cluster config (nodes.conf) and waits for cluster_state:ok. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** nodeOf: the port of the master serving a slot now. */
  nodeOf(slot: number): Promise<number>;
  /**
   * moveSlot moves one slot to another master as `redis-cli --cluster reshard`
   * does (IMPORTING/MIGRATING, MIGRATE of its keys one by one with `pauseMs`
   * between them, then SETSLOT NODE everywhere), and resolves with the new owner's port.
   */
  moveSlot(slot: number, pauseMs?: number): Promise<number>;
  close(): Promise<void>;
}

/** clusterPort: a free port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port > 55_000) continue;
    const bus = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port + 10_000, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (bus) return port;
  }
}

/** startCluster: `masters` masters (no replicas) sharing the 16384 slots, created with redis-cli --cluster create. */
export async function startCluster(masters = 3): Promise<TestCluster> {
  const bin = redisBinary();
  const cli = redisBinary('redis-cli');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-cluster-'));
  const ports: number[] = [];
  for (let i = 0; i < masters; i++) ports.push(await clusterPort());
  const nodes = ports.map((port, i) => {
    const d = join(dir, `node-${i}`);
    mkdirSync(d);
    return server(bin, port, () => serverArgs(port, d, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000']), 'redis-server (cluster node)');
  });
  const clusterOk = (): Promise<void> => until(async () => {
    for (const port of ports) if (!String(await command(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
    return true;
  }, 20_000, 'cluster_state:ok');
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const created = spawnSync(cli, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    await clusterOk();
  } catch (err) {
    await stopAll();
    throw err;
  }
  const idOf = async (port: number): Promise<string> => String(await command(port, 'CLUSTER', 'MYID'));
  const nodeOf = async (slot: number): Promise<number> => {
    const ranges = (await command(ports[0]!, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (range === undefined) throw new Error(`slot ${slot} has no owner`);
    return Number(range[2][1]);
  };
  return {
    mode: 'cluster',
    config: { cluster: ports.map((port) => ({ host: '127.0.0.1', port })) },
    external: false,
    nodes,
    async stop() { await Promise.all(nodes.map((n) => n.kill())); },
    async start() {
      await Promise.all(nodes.map((n) => n.start()));
      await clusterOk();
    },
    nodeOf,
    async moveSlot(slot, pauseMs = 0) {
      const from = await nodeOf(slot);
      const to = ports.find((p) => p !== from)!;
      const [fromId, toId] = [await idOf(from), await idOf(to)];
      await command(to, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId);
      await command(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId);
      for (;;) {
        const keys = (await command(from, 'CLUSTER', 'GETKEYSINSLOT', slot, 1)) as string[];
        if (keys.length === 0) break;
        await command(from, 'MIGRATE', '127.0.0.1', to, '', 0, 5000, 'REPLACE', 'KEYS', ...keys);
        if (pauseMs > 0) await sleep(pauseMs);
      }
      // The new owner first, then the old one, then the others (as redis-cli does).
      for (const port of [to, from, ...ports.filter((p) => p !== to && p !== from)]) await command(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId);
      return to;
    },
    close: stopAll,
  };
}

/**
 * keySlot computes a key's Redis Cluster hash slot: CRC16 (XMODEM) of the
 * key, or of its hash tag (between the first "{" and the next "}", when not
 * empty), modulo 16384.
 */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
