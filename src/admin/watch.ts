/**
 * Config file watching (`watch: true`): a change of the config file
 * reloads it, like SIGHUP or POST /admin/reload.
 *
 * The watcher follows the file's directory, not the file: editors and
 * deploy tools often replace a file (write a temporary one, rename it over
 * the original; Kubernetes swaps a `..data` symlink), which ends a watch on
 * the old inode. Events are debounced (an editor's save is several events)
 * and a reload happens only when the content actually changed.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname } from 'node:path';
import type { BalancerHost, ReloadResult } from '../app/host.js';
import type { Logger } from '../observe/log.js';

/** DEBOUNCE_MS: quiet time after the last event before the file is read. */
export const DEBOUNCE_MS = 250;

export interface ConfigWatcherOptions {
  readonly file: string;
  readonly log: Logger;
  /** reload is called once per content change (after the debounce). */
  readonly reload: () => Promise<ReloadResult>;
  readonly debounceMs?: number;
}

export class ConfigWatcher {
  readonly #file: string;
  readonly #name: string;
  readonly #log: Logger;
  readonly #reload: () => Promise<ReloadResult>;
  readonly #debounceMs: number;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastDigest: string | null = null;
  #running: Promise<void> | null = null;
  #again = false;

  constructor(options: ConfigWatcherOptions) {
    this.#file = options.file;
    this.#name = basename(options.file);
    this.#log = options.log;
    this.#reload = options.reload;
    this.#debounceMs = options.debounceMs ?? DEBOUNCE_MS;
  }

  get watching(): boolean {
    return this.#watcher !== null;
  }

  /** start begins watching; the current content is the baseline (it is what runs now). */
  start(): void {
    if (this.#watcher !== null) return;
    this.#lastDigest = digestOf(() => readFileSync(this.#file));
    try {
      // persistent: false — a watcher alone never keeps the process alive.
      this.#watcher = watch(dirname(this.#file), { persistent: false }, (_event, filename) => this.#onEvent(filename));
      this.#watcher.on('error', (err) => {
        this.#log.error({ err, file: this.#file }, 'config watch failed; SIGHUP and POST /admin/reload still reload');
        this.stop();
      });
    } catch (err) {
      this.#log.error({ err, file: this.#file }, 'cannot watch the config file');
      return;
    }
    this.#log.info({ file: this.#file }, 'watching the config file for changes');
  }

  stop(): void {
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #onEvent(filename: string | Buffer | null): void {
    const name = filename === null ? null : filename.toString();
    // Our file, an unnamed event, or a Kubernetes ConfigMap symlink swap ("..data").
    if (name !== null && name !== this.#name && !name.startsWith('..')) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#check();
    }, this.#debounceMs);
    this.#timer.unref();
  }

  /** check reloads when the content differs from the last one seen; one check runs at a time. */
  #check(): void {
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    this.#running = this.#checkOnce().finally(() => {
      this.#running = null;
      if (this.#again && this.#watcher !== null) {
        this.#again = false;
        this.#check();
      }
    });
  }

  async #checkOnce(): Promise<void> {
    const digest = await this.#digest();
    // Missing (mid-replace) or unchanged: nothing to do; the next event brings the new file.
    if (digest === null || digest === this.#lastDigest) return;
    this.#lastDigest = digest;
    this.#log.info({ file: this.#file }, 'config file changed; reloading');
    try {
      await this.#reload();
    } catch (err) {
      this.#log.error({ err }, 'reload after a config file change failed');
    }
  }

  async #digest(): Promise<string | null> {
    try {
      return digestOf(await readFile(this.#file));
    } catch {
      return null;
    }
  }

  /** idle resolves when no check is pending or running (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }
}

function digestOf(content: Buffer | (() => Buffer)): string | null {
  try {
    return createHash('sha256').update(typeof content === 'function' ? content() : content).digest('hex');
  } catch {
    return null;
  }
}

/**
 * installConfigWatch watches the balancer's config file while `watch` is
 * true, following the setting across reloads.
 */
export function installConfigWatch(balancer: BalancerHost): void {
  const file = balancer.configFile;
  let watcher: ConfigWatcher | null = null;
  const apply = (): void => {
    const wanted = balancer.config.watch;
    if (wanted && file === undefined) {
      balancer.log.warn('watch: true has no effect without a config file (-c FILE)');
      return;
    }
    if (wanted && watcher === null) {
      watcher = new ConfigWatcher({ file: file!, log: balancer.log, reload: () => balancer.reload() });
      watcher.start();
    } else if (!wanted && watcher !== null) {
      watcher.stop();
      watcher = null;
      balancer.log.info('stopped watching the config file');
    }
  };
  apply();
  balancer.addHook('reload', apply);
  balancer.addHook('close', () => {
    watcher?.stop();
    watcher = null;
  });
}
