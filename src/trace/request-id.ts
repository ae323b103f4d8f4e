/**
 * Request ids (`requestId:`): one id per request, kept from the client when
 * trusted and well formed, otherwise made here; the backend gets it, the
 * client gets it back, and the access log and error answers carry it, so
 * that a user's bug report leads to the log line.
 *
 * Made ids are a random per-process prefix and a counter: unique in
 * practice across processes and restarts (64 random bits), and a string
 * concatenation per request rather than a UUID's formatting. They are not
 * secrets and not unguessable; nothing should rely on that.
 */
import { randomBytes } from 'node:crypto';
import type { FulcrumConfig } from '../config/schema.js';

export type RequestIdConfig = NonNullable<FulcrumConfig['requestId']>;

/** WELL_FORMED: 1 to 128 visible ASCII characters (no spaces, no controls). */
const WELL_FORMED = /^[\x21-\x7e]{1,128}$/;

/** wellFormedId: the value is an id Fulcrum may keep. */
export function wellFormedId(value: string): boolean {
  return WELL_FORMED.test(value);
}

/** REQUEST_ID marks a request object with its id, so the header pass, templates and the exchange agree on one. */
const REQUEST_ID: unique symbol = Symbol('fulcrum.requestId');
interface Marked { [REQUEST_ID]?: string }

export class RequestIds {
  /** header: the configured name as written (sent that way), and lower-cased (for comparisons). */
  readonly header: string;
  readonly lowerHeader: string;
  readonly #generate: boolean;
  readonly #trust: boolean;
  readonly #prefix = `${randomBytes(8).toString('hex')}-`;
  #counter = 0;

  constructor(config: RequestIdConfig) {
    this.header = config.header;
    this.lowerHeader = config.header.toLowerCase();
    this.#generate = config.generate;
    this.#trust = config.trustIncoming;
  }

  /**
   * of returns the request's id ('' when it has none: an untrusted or
   * malformed incoming one with `generate: false`). Decided once per request
   * and remembered on it.
   */
  of(req: { readonly rawHeaders: readonly string[] }): string {
    const marked = req as Marked;
    const known = marked[REQUEST_ID];
    if (known !== undefined) return known;
    const id = (this.#trust ? this.#incoming(req.rawHeaders) : undefined) ?? (this.#generate ? this.next() : '');
    marked[REQUEST_ID] = id;
    return id;
  }

  /** next makes a new id. */
  next(): string {
    this.#counter++;
    return this.#prefix + this.#counter.toString(36);
  }

  /** #incoming: the client's id when there is exactly one and it is well formed. */
  #incoming(raw: readonly string[]): string | undefined {
    const name = this.lowerHeader;
    let found: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === name.length && n.toLowerCase() === name) {
        if (found !== undefined) return undefined; // two ids: neither can be trusted to be the one
        found = raw[i + 1]!.trim();
      }
    }
    return found !== undefined && WELL_FORMED.test(found) ? found : undefined;
  }
}

/** dropField removes every field `name` (compared lower-case) from a flat [name, value, ...] list, from index `from` on. */
export function dropField(headers: string[], lowerName: string, from = 0): void {
  let w = from;
  for (let r = from; r < headers.length; r += 2) {
    const n = headers[r]!;
    if (n.length === lowerName.length && n.toLowerCase() === lowerName) continue;
    if (w !== r) {
      headers[w] = n;
      headers[w + 1] = headers[r + 1]!;
    }
    w += 2;
  }
  headers.length = w;
}

/** setField gives a flat header list exactly one field `name`, with `value`, at its end; it returns the value's index. */
export function setField(headers: string[], lowerName: string, name: string, value: string, from = 0): number {
  dropField(headers, lowerName, from);
  headers.push(name, value);
  return headers.length - 1;
}
