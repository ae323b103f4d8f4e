/**
 * The Redis state store, through ioredis: shared by every balancer instance
 * pointed at the same Redis and key prefix, and kept across restarts.
 * docs/redis.md lists every key it writes.
 *
 * Redis must never hold traffic up, so the client fails fast instead of
 * queueing: no offline queue, no retries of a command, a command timeout,
 * and reconnection with backoff in the background. Commands issued in the
 * same tick are sent as one pipeline (auto-pipelining). Two connections are
 * used, because a connection in pub/sub mode can issue no other command.
 *
 * The same store runs on a standalone server, on a master followed through
 * Sentinel, or on a Redis Cluster (redis-client.ts, redis-keys.ts): in
 * Sentinel mode a counter batch counts as acknowledged only once a replica
 * has it (WAIT), so that a failover loses no acknowledged count; a write
 * caught by a failover is retried once the client is connected again; in
 * cluster mode pub/sub is sharded (SSUBSCRIBE/SPUBLISH) on Redis 7 and later.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { connectedServer, isCluster, newRedisClient, type ClientOptions, type RedisConnection, type RedisTarget } from './redis-client.js';
import { stateKeys } from './redis-keys.js';
import { decodeHealth, decodeMessage, decodeOverride, encodeHealth, encodeMessage, encodeOverride, parseJson } from './redis-codec.js';
import {
  backendKey, countersFromFields, counterFields, StateStoreError,
  type BackendOverride, type CounterDelta, type Counters, type InstanceInfo, type SharedHealth,
  type StateStore, type StoreState, type StoreTopology, type Unsubscribe,
} from './store.js';

export interface RedisStoreOptions {
  readonly target: RedisTarget;
  readonly keyPrefix: string;
  readonly instanceId: string;
  /** commandTimeout bounds every command; a timed-out command is a failure, not a wait. */
  readonly commandTimeout?: number;
}

/** How long the last applied flush of an instance is remembered (to make a resent flush a no-op). */
const FLUSHED_TTL_MS = 24 * 60 * 60 * 1000;

/** REPLICA_WAIT_MS: how long a flush waits for a replica to have it (Sentinel mode), within the command timeout. */
const REPLICA_WAIT_MS = 300;

/** RETRY_WINDOW_MS: how long a write caught by a lost connection (a failover) waits for the client to be back before it is retried. */
const RETRY_WINDOW_MS = 5000;

/**
 * fulcrumFlush: adds the increments unless this batch (seq) was already
 * applied, then returns the counters hash, in one atomic step.
 * KEYS: counters, flushed-seq. ARGV: seq, seq TTL ms, field, increment, ...
 */
const FLUSH = `
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > last then
  for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return redis.call('HGETALL', KEYS[1])`;

/**
 * fulcrumHeartbeat: records this instance at the server's clock, drops the
 * instances not seen for a TTL, returns the live ones with their last beat.
 * (replicate_commands lets a script write after reading TIME on Redis < 5.)
 * KEYS: instances. ARGV: instance id, TTL ms.
 */
const HEARTBEAT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', now - tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')`;

/**
 * fulcrumAcquire: SET NX PX when the lease is free; compare-and-extend when
 * the caller already holds it. KEYS: lease. ARGV: owner, TTL ms.
 */
const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** fulcrumRelease: compare-and-delete, so that a late release never frees someone else's lease. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface Scripts {
  fulcrumFlush(counters: string, flushed: string, seq: number, ttl: number, ...pairs: (string | number)[]): Promise<string[]>;
  fulcrumHeartbeat(instances: string, id: string, ttl: number): Promise<string[]>;
  fulcrumAcquire(lease: string, owner: string, ttl: number): Promise<number>;
  fulcrumRelease(lease: string, owner: string): Promise<number>;
}

function clientOptions(options: RedisStoreOptions): ClientOptions {
  return {
    connectionName: `fulcrum-${options.instanceId.replace(/[^A-Za-z0-9._:-]/g, '_')}`,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    enableAutoPipelining: true,
    commandTimeout: options.commandTimeout ?? 1000,
    connectTimeout: 2000,
    // 100ms, 200ms, 400ms ... then every 2s, for as long as it takes.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000),
  };
}

export class RedisStore implements StateStore {
  readonly type = 'redis' as const;
  readonly instanceId: string;
  #state: StoreState = 'connecting';
  #lastError: string | null = null;
  #closing = false;
  readonly #target: RedisTarget;
  readonly #common: ClientOptions;
  readonly #client: RedisConnection;
  /** #subscriber: made at once for a single server; in cluster mode once the server version (sharded pub/sub or not) is known. */
  #subscriber: RedisConnection | null = null;
  /** #sharded: pub/sub is sharded (cluster mode on Redis 7 or later); decided at the first connection. */
  #sharded: Promise<boolean>;
  readonly #scripts: Scripts;
  readonly #keys: ReturnType<typeof stateKeys>;
  readonly #events = new EventEmitter<{ state: [StoreState]; health: [SharedHealth]; backend: [BackendOverride] }>();

  constructor(options: RedisStoreOptions) {
    this.instanceId = options.instanceId;
    this.#target = options.target;
    this.#keys = stateKeys(options.keyPrefix, options.instanceId, options.target.mode);
    this.#events.setMaxListeners(0);
    const common = clientOptions(options);
    this.#common = common;
    this.#client = newRedisClient(options.target, common);
    this.#client.defineCommand('fulcrumFlush', { numberOfKeys: 2, lua: FLUSH });
    this.#client.defineCommand('fulcrumHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT });
    this.#client.defineCommand('fulcrumAcquire', { numberOfKeys: 1, lua: ACQUIRE });
    this.#client.defineCommand('fulcrumRelease', { numberOfKeys: 1, lua: RELEASE });
    this.#scripts = this.#client as unknown as Scripts;
    this.#client.on('ready', () => this.#setState('ready'));
    this.#client.on('close', () => this.#setState('down'));
    this.#client.on('end', () => this.#setState('down'));
    // ioredis emits an error per failed attempt; the state change is what gets reported (once).
    this.#client.on('error', (err: Error) => { this.#lastError = err.message; });

    if (options.target.mode !== 'cluster') {
      this.#sharded = Promise.resolve(false);
      this.#subscribe(false);
    } else {
      this.#sharded = new Promise((resolve) => {
        this.#client.once('ready', () => {
          this.#client.info('server').then((info) => resolve(majorVersion(info) >= 7), () => resolve(false));
        });
      });
      void this.#sharded.then((sharded) => { if (!this.#closing) this.#subscribe(sharded); });
    }
  }

  /** #subscribe opens the subscriber connection and subscribes on every (re)connection: a new connection starts with none. */
  #subscribe(sharded: boolean): void {
    const subscriber = newRedisClient(this.#target, {
      ...this.#common, enableAutoPipelining: false, connectionName: `${this.#common.connectionName}-sub`,
      ...(this.#target.mode === 'cluster' ? { shardedSubscribers: sharded } : {}),
    });
    this.#subscriber = subscriber;
    subscriber.on('error', () => undefined);
    const channel = this.#keys.events;
    subscriber.on('ready', () => {
      (sharded ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel)).catch(() => undefined);
    });
    subscriber.on(sharded ? 'smessage' : 'message', (_channel: string, text: string) => this.#deliver(text));
  }

  get state(): StoreState {
    return this.#state;
  }

  /** lastError is the client's last connection error, for the "store unavailable" log line. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** topology: the mode, and the server connected now (standalone, Sentinel: the master) or the cluster's master count. */
  topology(): StoreTopology {
    const client = this.#client;
    if (isCluster(client)) return { mode: 'cluster', nodes: client.status === 'ready' ? client.nodes('master').length : 0 };
    return { mode: this.#target.mode, master: connectedServer(client) };
  }

  onState(listener: (state: StoreState) => void): Unsubscribe {
    this.#events.on('state', listener);
    return () => this.#events.off('state', listener);
  }

  #setState(state: StoreState): void {
    if (this.#closing || state === this.#state) return;
    this.#state = state;
    this.#events.emit('state', state);
  }

  async #run<T>(operation: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      throw new StateStoreError(operation, { cause: err });
    }
  }

  /**
   * #write runs a write that is safe to repeat (it sets a value, or publishes
   * a message that its receivers apply idempotently). One caught by a lost
   * connection, as in a Sentinel failover, is retried once the client is
   * connected again (to the new master), within RETRY_WINDOW_MS.
   */
  async #write<T>(operation: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      if (this.#closing || !(await this.#readyWithin(RETRY_WINDOW_MS))) throw new StateStoreError(operation, { cause: err });
      return this.#run(operation, command);
    }
  }

  /** #readyWithin resolves true once the client is (or becomes) ready within `ms`. */
  #readyWithin(ms: number): Promise<boolean> {
    if (this.#client.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.#client.off('ready', onReady);
        resolve(ok);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), ms);
      timer.unref();
      this.#client.on('ready', onReady);
    });
  }

  async flushCounters(seq: number, delta: CounterDelta): Promise<Counters> {
    const pairs = counterFields(delta).flat();
    const reply = await this.#run('flush counters', () => this.#scripts.fulcrumFlush(this.#keys.counters, this.#keys.flushed, seq, FLUSHED_TTL_MS, ...pairs));
    if (this.#target.mode === 'sentinel' && pairs.length > 0) await this.#run('flush counters', () => this.#replicated(this.#client as Redis));
    return countersFromFields(pairsOf(reply));
  }

  /**
   * #replicated: with Sentinel a failover promotes a replica, so a batch the
   * master applied but no replica received would be lost with the master
   * while this instance thinks it acknowledged. The batch is acknowledged
   * once a replica has it (WAIT); otherwise it stays and is resent with its
   * sequence number (a no-op where it did arrive). A master with no replica
   * at all has nothing to wait for.
   */
  async #replicated(client: Redis): Promise<void> {
    if ((await client.wait(1, REPLICA_WAIT_MS)) >= 1) return;
    const role = (await client.role()) as unknown[];
    if (role[0] === 'master' && Array.isArray(role[2]) && role[2].length === 0) return;
    throw new Error(`no replica acknowledged the write within ${REPLICA_WAIT_MS}ms (role ${String(role[0])})`);
  }

  async readCounters(): Promise<Counters> {
    const hash = await this.#run('read counters', () => this.#client.hgetall(this.#keys.counters));
    return countersFromFields(Object.entries(hash).map(([f, v]) => [f, Number(v)]));
  }

  async heartbeat(ttlMs: number): Promise<InstanceInfo[]> {
    const reply = await this.#run('heartbeat', () => this.#scripts.fulcrumHeartbeat(this.#keys.instances, this.instanceId, ttlMs));
    return pairsOf(reply).map(([id, lastSeen]) => ({ id, lastSeen }));
  }

  async leave(): Promise<void> {
    await this.#run('leave', () => Promise.all([this.#client.zrem(this.#keys.instances, this.instanceId), this.#client.del(this.#keys.flushed)]));
  }

  async acquireLease(name: string, ttlMs: number): Promise<boolean> {
    return (await this.#run('acquire lease', () => this.#scripts.fulcrumAcquire(this.#keys.lease(name), this.instanceId, ttlMs))) === 1;
  }

  async releaseLease(name: string): Promise<void> {
    await this.#run('release lease', () => this.#scripts.fulcrumRelease(this.#keys.lease(name), this.instanceId));
  }

  /** #publish announces a message on the events channel (sharded in cluster mode on Redis 7+). */
  async #publish(message: string): Promise<void> {
    if (await this.#sharded) await this.#client.spublish(this.#keys.events, message);
    else await this.#client.publish(this.#keys.events, message);
  }

  async publishHealth(health: SharedHealth): Promise<void> {
    const message = encodeMessage({ kind: 'health', from: this.instanceId, health });
    await this.#write('publish health', () => Promise.all([
      this.#client.hset(this.#keys.health, backendKey(health.service, health.url), JSON.stringify(encodeHealth(health))),
      this.#publish(message),
    ]));
  }

  async readHealth(): Promise<SharedHealth[]> {
    const hash = await this.#run('read health', () => this.#client.hgetall(this.#keys.health));
    return decodeAll(hash, decodeHealth);
  }

  onHealth(listener: (health: SharedHealth) => void): Unsubscribe {
    this.#events.on('health', listener);
    return () => this.#events.off('health', listener);
  }

  async publishBackend(override: BackendOverride): Promise<void> {
    const message = encodeMessage({ kind: 'backend', from: this.instanceId, override });
    await this.#write('publish backend change', () => Promise.all([
      this.#client.hset(this.#keys.backends, backendKey(override.service, override.url), JSON.stringify(encodeOverride(override))),
      this.#publish(message),
    ]));
  }

  async readBackends(): Promise<BackendOverride[]> {
    const hash = await this.#run('read backend changes', () => this.#client.hgetall(this.#keys.backends));
    return decodeAll(hash, decodeOverride);
  }

  onBackend(listener: (override: BackendOverride) => void): Unsubscribe {
    this.#events.on('backend', listener);
    return () => this.#events.off('backend', listener);
  }

  async getValue(key: string): Promise<string | null> {
    return this.#run('read value', () => this.#client.get(this.#keys.value(key)));
  }

  async setValue(key: string, value: string, ttlMs?: number): Promise<void> {
    const k = this.#keys.value(key);
    await this.#write('write value', () => (ttlMs === undefined ? this.#client.set(k, value) : this.#client.set(k, value, 'PX', Math.max(1, Math.ceil(ttlMs)))));
  }

  async deleteValue(key: string): Promise<void> {
    await this.#write('delete value', () => this.#client.del(this.#keys.value(key)));
  }

  #deliver(text: string): void {
    const message = decodeMessage(text);
    if (message === null || message.from === this.instanceId) return;
    if (message.kind === 'health') this.#events.emit('health', message.health);
    else this.#events.emit('backend', message.override);
  }

  /** close quits both connections, waiting at most a second for the server to answer. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#events.removeAllListeners();
    const connections = [this.#client, ...(this.#subscriber === null ? [] : [this.#subscriber])];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, 1000); });
    await Promise.race([Promise.allSettled(connections.map((c) => c.quit())), timeout]);
    clearTimeout(timer);
    for (const c of connections) c.disconnect();
  }
}

/** majorVersion reads redis_version from INFO server (0 when absent). */
function majorVersion(info: string): number {
  const m = /^redis_version:(\d+)/m.exec(info);
  return m === null ? 0 : Number(m[1]);
}

function pairsOf(flat: readonly string[]): [string, number][] {
  const out: [string, number][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, Number(flat[i + 1])]);
  return out;
}

function decodeAll<T>(hash: Record<string, string>, decode: (v: unknown) => T | null): T[] {
  const out: T[] = [];
  for (const text of Object.values(hash)) {
    const value = decode(parseJson(text));
    if (value !== null) out.push(value);
  }
  return out;
}
