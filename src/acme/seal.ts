/**
 * Private keys at rest: with `acme.storageKey` set, every private key
 * (the account's and the certificates') is stored encrypted with
 * AES-256-GCM, so that a copy of the Redis data or of the storage directory
 * alone does not give the keys away. Without a key they are stored as PEM.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const PREFIX = 'aes256gcm:';

/** parseStorageKey reads the 32-byte key, written as 64 hex digits or base64 (the config checked which). */
export function parseStorageKey(text: string): Buffer {
  return /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
}

export class KeySeal {
  constructor(private readonly key: Buffer | null) {}

  /** seal encrypts a PEM (iv, tag and ciphertext, base64, after a prefix that says how). */
  seal(pem: string): string {
    if (this.key === null) return pem;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
    return `${PREFIX}${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${data.toString('base64')}`;
  }

  /** open decrypts what seal wrote; it throws for a sealed value and no key or the wrong one. */
  open(stored: string): string {
    if (!stored.startsWith(PREFIX)) return stored;
    if (this.key === null) throw new Error('the private key is encrypted: set acme.storageKey');
    const [iv, tag, data] = stored.slice(PREFIX.length).split(':');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv ?? '', 'base64'));
    decipher.setAuthTag(Buffer.from(tag ?? '', 'base64'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(data ?? '', 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('cannot decrypt the private key: acme.storageKey is not the key it was stored with');
    }
  }
}
