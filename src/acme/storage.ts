/**
 * Where the ACME account and the certificates are kept: `storage: file`
 * (one file per value under acme.storageDir, for a single instance that
 * restarts) or `storage: redis` (the state store's keyed values, shared by
 * every instance). Challenge tokens always go to the state store, which is
 * shared with whoever can receive the CA's validation: other instances on
 * Redis, other workers of a `workers: N` cluster over IPC.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateStore } from '../state/store.js';

export interface AcmeStorage {
  readonly kind: 'file' | 'redis';
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
}

/** StoreStorage keeps values in the state store (Redis: docs/redis.md lists the keys). */
export class StoreStorage implements AcmeStorage {
  readonly kind = 'redis' as const;
  constructor(private readonly store: StateStore) {}
  get(key: string): Promise<string | null> { return this.store.getValue(key); }
  set(key: string, value: string): Promise<void> { return this.store.setValue(key, value); }
  delete(key: string): Promise<void> { return this.store.deleteValue(key); }
}

/** fileName turns a key into a safe file name ("acme:cert:a.com,b.com" -> "acme_cert_a.com,b.com.json"). */
export function fileName(key: string): string {
  return `${key.replace(/[^A-Za-z0-9.,_-]/g, '_')}.json`;
}

/** FileStorage keeps one file per value; a write goes to a temporary file renamed over the old one, so a reader never sees half of it. */
export class FileStorage implements AcmeStorage {
  readonly kind = 'file' as const;
  #made = false;
  constructor(private readonly dir: string) {}

  async get(key: string): Promise<string | null> {
    try {
      return await readFile(join(this.dir, fileName(key)), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async set(key: string, value: string): Promise<void> {
    if (!this.#made) {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      this.#made = true;
    }
    const file = join(this.dir, fileName(key));
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, value, { mode: 0o600 });
    await rename(tmp, file);
  }

  async delete(key: string): Promise<void> {
    await rm(join(this.dir, fileName(key)), { force: true });
  }
}
