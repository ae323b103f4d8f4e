/**
 * The primary of a `workers: N` cluster: it serves no request itself. It
 * forks N workers running the same command line (so the same config), each
 * a full balancer sharing the listening sockets through node:cluster, and:
 *
 * - holds the workers' shared state (StateHub) and, when the rate limiter
 *   uses the memory store, its counts (LimiterHub), answering their calls;
 * - replaces a worker that dies, after a delay that doubles with each quick
 *   death of that slot (100 ms up to 10 s; reset once one has run for 10 s);
 *   a worker that cannot start at all (bad config, port taken) stops the
 *   whole cluster with its exit code, as a single process would;
 * - on SIGTERM or SIGINT asks every worker to drain, and exits 0 once all
 *   have exited cleanly; a second signal kills them and exits at once;
 * - on SIGHUP asks every worker to reload its config file and logs one
 *   result for all of them.
 *
 * The sticky-session secret is made here and handed to every worker
 * (core/cluster-env.ts), so that a cookie from one worker is honoured by all.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { ReloadResult } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { isTagged, type StateCallMessage } from '../state/ipc.js';
import { SECRET_ENV, WORKER_ENV } from '../core/cluster-env.js';
import { LimiterHub } from './limiter-hub.js';
import type { LimitCallMessage } from '../ratelimit/ipc-store.js';
import type { ReloadedMessage, ReloadMessage, ShutdownMessage, ReloadRequestMessage, ReloadAllResultMessage, MetricsRequestMessage, MetricsResultMessage } from './protocol.js';
import { AggregatorRegistry, type RegistryContentType } from 'prom-client';
import { prettyStream, type LogFormat } from '../observe/log.js';
import { StateHub, sendTo } from './state-hub.js';

export interface PrimaryOptions {
  readonly workers: number;
  readonly logLevel: string;
  /** logFormat: the workers' format, for the primary's own lines too. */
  readonly logFormat?: LogFormat;
  /** drainTimeout: the workers' drain time; the primary waits this plus SHUTDOWN_GRACE before killing them. */
  readonly drainTimeout: number;
  /** configFile: what SIGHUP reloads; without one, SIGHUP only logs. */
  readonly configFile: string | undefined;
}

/** A worker that runs this long before dying starts its slot's backoff afresh. */
const HEALTHY_RUN_MS = 10_000;
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** SHUTDOWN_GRACE: on top of the drain time, for the workers' last flush and exit. */
const SHUTDOWN_GRACE_MS = 5_000;
/** RELOAD_TIMEOUT: how long SIGHUP waits for every worker's reload result. */
const RELOAD_TIMEOUT_MS = 10_000;

interface Slot {
  /** n: the slot number, 1..N, kept by the replacements of its worker. */
  readonly n: number;
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  /** quickDeaths: deaths in a row that came before HEALTHY_RUN_MS (the backoff's exponent). */
  quickDeaths: number;
  restartTimer: NodeJS.Timeout | null;
}

interface PendingReload {
  readonly waiting: Set<Worker>;
  readonly results: ReloadResult[];
  readonly done: () => void;
}

export class Primary {
  readonly #options: PrimaryOptions;
  readonly #log: Logger;
  readonly #secret = randomBytes(32).toString('hex');
  readonly #state = new StateHub();
  readonly #limiter = new LimiterHub();
  readonly #slots: Slot[] = [];
  #running = false;
  #stopping = false;
  /** #cleanExit: false once a worker exits other than with code 0 during shutdown. */
  #cleanExit = true;
  #reloadSeq = 0;
  /** #aggregator combines the workers' Prometheus metrics (prom-client asks each worker over IPC). */
  #aggregator: AggregatorRegistry<RegistryContentType> | null = null;
  readonly #reloads = new Map<number, PendingReload>();

  constructor(options: PrimaryOptions) {
    this.#options = options;
    // Synchronous output: the primary logs rarely, and a crash or a restart must not wait in a buffer.
    this.#log = pino({ level: options.logLevel, base: { pid: process.pid, role: 'primary' }, timestamp: pino.stdTimeFunctions.isoTime },
      options.logFormat === 'pretty' ? prettyStream(1, true) : pino.destination({ dest: 1, sync: true }));
  }

  start(): void {
    cluster.on('message', (worker, message: unknown) => this.#message(worker, message));
    cluster.on('exit', (worker, code, signal) => this.#exited(worker, code, signal));
    process.on('SIGTERM', (s) => this.#signal(s));
    process.on('SIGINT', (s) => this.#signal(s));
    process.on('SIGHUP', () => { void this.reload(); });
    for (let n = 1; n <= this.#options.workers; n++) {
      const slot: Slot = { n, worker: null, ready: false, startedAt: 0, quickDeaths: 0, restartTimer: null };
      this.#slots.push(slot);
      this.#fork(slot);
    }
  }

  #fork(slot: Slot): void {
    slot.restartTimer = null;
    slot.ready = false;
    slot.startedAt = Date.now();
    slot.worker = cluster.fork({ [WORKER_ENV]: String(slot.n), [SECRET_ENV]: this.#secret });
  }

  #slotOf(worker: Worker): Slot | undefined {
    return this.#slots.find((s) => s.worker === worker);
  }

  #message(worker: Worker, message: unknown): void {
    if (!isTagged(message)) return;
    switch (message.fulcrum) {
      case 'state-call': this.#state.handle(worker, message as StateCallMessage); break;
      case 'limit-call': this.#limiter.handle(worker, message as LimitCallMessage); break;
      case 'ready': this.#ready(worker); break;
      case 'reloaded': this.#reloaded(worker, message as ReloadedMessage); break;
      case 'metrics-request': {
        const { id } = message as MetricsRequestMessage;
        this.#aggregator ??= new AggregatorRegistry();
        this.#aggregator.clusterMetrics().then(
          (body: string) => sendTo(worker, { fulcrum: 'metrics-result', id, result: { contentType: this.#aggregator!.contentType, body } } satisfies MetricsResultMessage),
          (err: unknown) => {
            this.#log.warn({ err: (err as Error).message }, 'could not gather the workers\' metrics; the asking worker serves its own');
            sendTo(worker, { fulcrum: 'metrics-result', id, result: null } satisfies MetricsResultMessage);
          },
        );
        break;
      }
      case 'reload-request': {
        const { id } = message as ReloadRequestMessage;
        void this.reload().then((result) => sendTo(worker, { fulcrum: 'reload-all-result', id, result } satisfies ReloadAllResultMessage));
        break;
      }
    }
  }

  #ready(worker: Worker): void {
    const slot = this.#slotOf(worker);
    if (slot === undefined) return;
    slot.ready = true;
    if (this.#stopping) {
      // Started while the others drain: drain it too.
      sendTo(worker, { fulcrum: 'shutdown' } satisfies ShutdownMessage);
      return;
    }
    if (this.#running) {
      this.#log.info({ worker: slot.n, workerPid: worker.process.pid }, 'worker replaced');
    } else if (this.#slots.every((s) => s.ready)) {
      this.#running = true;
      this.#log.info({ workers: this.#slots.length, workerPids: this.#slots.map((s) => s.worker?.process.pid) }, 'fulcrum cluster started');
    }
  }

  #exited(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.#slotOf(worker);
    void this.#state.forget(worker);
    this.#forgetReloads(worker);
    if (slot === undefined) return;
    slot.worker = null;
    const wasReady = slot.ready;
    slot.ready = false;
    if (this.#stopping) {
      if (code !== 0) this.#cleanExit = false;
      if (this.#slots.every((s) => s.worker === null)) this.#exit(this.#cleanExit ? 0 : 1);
      return;
    }
    if (!this.#running && !wasReady) {
      // The first start failed (the worker said why on stderr): stop, as one process would.
      this.#log.error({ worker: slot.n, code, signal }, 'a worker could not start; stopping');
      for (const s of this.#slots) s.worker?.process.kill('SIGKILL');
      this.#exit(code !== null && code !== 0 ? code : 1);
      return;
    }
    const ranFor = Date.now() - slot.startedAt;
    slot.quickDeaths = ranFor < HEALTHY_RUN_MS ? slot.quickDeaths + 1 : 1;
    const delay = Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1));
    this.#log.warn({ worker: slot.n, workerPid: worker.process.pid, code, signal, ranForMs: ranFor, restartInMs: delay }, 'worker died; replacing it');
    slot.restartTimer = setTimeout(() => this.#fork(slot), delay);
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.#stopping) {
      this.#log.warn({ signal }, 'second signal: killing the workers and exiting now');
      for (const s of this.#slots) s.worker?.process.kill('SIGKILL');
      this.#exit(1);
      return;
    }
    this.#stopping = true;
    this.#log.info({ signal }, 'stopping: every worker drains');
    for (const s of this.#slots) {
      if (s.restartTimer !== null) clearTimeout(s.restartTimer);
      s.restartTimer = null;
      if (s.worker !== null) sendTo(s.worker, { fulcrum: 'shutdown' } satisfies ShutdownMessage);
    }
    if (this.#slots.every((s) => s.worker === null)) {
      this.#exit(0);
      return;
    }
    setTimeout(() => {
      const left = this.#slots.filter((s) => s.worker !== null);
      this.#log.error({ workers: left.map((s) => s.n) }, 'workers did not stop in time; killing them');
      for (const s of left) s.worker!.process.kill('SIGKILL');
      this.#exit(1);
    }, this.#options.drainTimeout + SHUTDOWN_GRACE_MS).unref();
  }

  #exit(code: number): never {
    if (code === 0) this.#log.info('fulcrum cluster stopped');
    process.exit(code);
  }

  /**
   * reload asks every serving worker to reload its config file, logs one
   * result and returns it: the first rejection if any worker rejected the
   * new config, else the first worker's result.
   */
  async reload(): Promise<ReloadResult> {
    const at = new Date().toISOString();
    const failed = (error: string): ReloadResult => ({ ok: false, error, added: [], removed: [], updated: [], at });
    if (this.#stopping) return failed('the cluster is shutting down');
    if (this.#options.configFile === undefined) {
      this.#log.warn('reload: no config file to reload');
      return failed('no config file to reload');
    }
    const workers = this.#slots.filter((s) => s.ready && s.worker !== null).map((s) => s.worker!);
    const id = ++this.#reloadSeq;
    const results: ReloadResult[] = [];
    const waiting = new Set(workers);
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#reloads.set(id, { waiting, results, done: resolve });
      for (const w of workers) sendTo(w, { fulcrum: 'reload', id } satisfies ReloadMessage);
      timer = setTimeout(resolve, RELOAD_TIMEOUT_MS);
      if (waiting.size === 0) resolve();
    });
    clearTimeout(timer);
    this.#reloads.delete(id);
    this.#logReload(workers.length, results, waiting.size);
    const rejected = results.find((r) => !r.ok);
    if (rejected !== undefined) return rejected;
    if (results.length === 0) return failed('no worker answered the reload');
    if (waiting.size > 0) return { ...results[0]!, ok: false, error: `${waiting.size} worker(s) did not answer the reload in time` };
    return results[0]!;
  }

  #reloaded(worker: Worker, message: ReloadedMessage): void {
    const pending = this.#reloads.get(message.id);
    if (pending === undefined || !pending.waiting.delete(worker)) return;
    pending.results.push(message.result);
    if (pending.waiting.size === 0) pending.done();
  }

  #forgetReloads(worker: Worker): void {
    for (const pending of this.#reloads.values()) if (pending.waiting.delete(worker) && pending.waiting.size === 0) pending.done();
  }

  #logReload(asked: number, results: readonly ReloadResult[], unanswered: number): void {
    const rejected = results.filter((r) => !r.ok);
    if (rejected.length > 0) {
      const first = rejected[0]!;
      this.#log.error({ workers: asked, rejectedBy: rejected.length, problems: first.problems ?? [first.error] }, 'reload rejected; the previous configuration stays in force');
    } else if (results.length > 0) {
      const { added, removed, updated } = results[0]!;
      this.#log.info({ workers: results.length, added, removed, updated }, 'configuration reloaded in every worker');
    }
    if (unanswered > 0) this.#log.warn({ workers: unanswered }, 'workers did not answer the reload in time');
  }
}

/** runPrimary starts the cluster; the process then lives until a signal stops it. */
export function runPrimary(options: PrimaryOptions): Primary {
  const primary = new Primary(options);
  primary.start();
  return primary;
}
