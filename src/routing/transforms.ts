/**
 * A route's transforms: the path rewrite and the header changes in either
 * direction. Both work on what the pipeline already has (the origin-form
 * target, the flat [name, value, ...] header lists), in place where they
 * can, and cost nothing on routes that have none.
 */
import { HEADER_PLACEHOLDERS, parseTemplate, renderTemplate, type Template } from '../core/template.js';
import type { HeaderTransformConfig, RouteConfig } from '../config/schema.js';
import { prefixMatches } from './path.js';

/** Rewrite turns the path a route matched into the path the backend gets. */
export interface Rewrite {
  /**
   * apply returns the new path (query not included) and sets
   * `forwarded.prefix` to the prefix it stripped, if any.
   */
  apply(path: string, forwarded: { prefix: string | null }): string;
}

export function compileRewrite(config: NonNullable<RouteConfig['rewrite']>): Rewrite {
  if (config.stripPrefix !== undefined) {
    // "/v1/" strips as "/v1": the slash after the prefix starts the backend's path.
    const prefix = config.stripPrefix.length > 1 && config.stripPrefix.endsWith('/') ? config.stripPrefix.slice(0, -1) : config.stripPrefix;
    return {
      apply(path, forwarded) {
        if (prefix === '/' || !prefixMatches(prefix, path)) return path;
        forwarded.prefix = prefix;
        const rest = path.slice(prefix.length);
        return rest === '' ? '/' : rest;
      },
    };
  }
  if (config.replacePrefix !== undefined) {
    const { from, to } = config.replacePrefix;
    return {
      apply(path) {
        if (!prefixMatches(from, path)) return path;
        const rest = path.slice(from.length);
        // Join without doubling or losing the slash between the new prefix and the rest.
        if (rest === '') return to;
        if (to.endsWith('/') && rest.startsWith('/')) return to + rest.slice(1);
        if (!to.endsWith('/') && !rest.startsWith('/')) return `${to}/${rest}`;
        return to + rest;
      },
    };
  }
  const regex = new RegExp(config.regex!);
  const replacement = config.replacement!;
  return {
    apply(path) {
      const out = path.replace(regex, replacement);
      return out.startsWith('/') ? out : `/${out}`;
    },
  };
}

/** HeaderValues are what header templates may refer to, for one request. */
export interface HeaderValues {
  readonly client_ip: string;
  readonly host: string;
  readonly route: string;
  readonly service: string;
  readonly request_id: string;
}

/** HeaderTransform applies `remove`, then `set`, then `add` to a flat header list. */
export class HeaderTransform {
  /** #drop: lower-case names whose fields are removed (`remove` and the names `set` replaces). */
  readonly #drop: ReadonlySet<string>;
  readonly #append: readonly { readonly name: string; readonly value: Template }[];
  /** usesRequestId: a value refers to {request_id} (the pipeline then makes one when the client sent none). */
  readonly usesRequestId: boolean;
  /** setsHost: `set` names Host (a request transform then replaces the Host the exchange would send). */
  readonly setsHost: boolean;

  constructor(config: HeaderTransformConfig) {
    const drop = new Set<string>((config.remove ?? []).map((n) => n.toLowerCase()));
    const append: { name: string; value: Template }[] = [];
    const allowed = (name: string): boolean => HEADER_PLACEHOLDERS.has(name);
    for (const [name, value] of Object.entries(config.set ?? {})) {
      drop.add(name.toLowerCase());
      append.push({ name, value: parseTemplate(value, allowed) });
    }
    for (const [name, values] of Object.entries(config.add ?? {})) {
      for (const value of Array.isArray(values) ? values : [values]) append.push({ name, value: parseTemplate(value, allowed) });
    }
    this.#drop = drop;
    this.#append = append;
    this.usesRequestId = append.some((a) => a.value.parts.some((p) => typeof p !== 'string' && p.name === 'request_id'));
    this.setsHost = drop.has('host');
  }

  /**
   * apply changes `headers` (a flat list) and returns it. `from` is the first
   * index it may touch: a request's list starts with the Host pair, which
   * the exchange fills in, so request transforms keep it in place.
   */
  apply(headers: string[], values: HeaderValues, from = 0): string[] {
    let out = headers;
    if (this.#drop.size > 0) {
      let w = from;
      for (let r = from; r < headers.length; r += 2) {
        if (this.#drop.has(headers[r]!.toLowerCase())) continue;
        headers[w] = headers[r]!;
        headers[w + 1] = headers[r + 1]!;
        w += 2;
      }
      headers.length = w;
      out = headers;
    }
    for (const a of this.#append) {
      const value = renderTemplate(a.value, (name) => values[name as keyof HeaderValues]);
      if (from > 0 && a.name.toLowerCase() === 'host') out[1] = value;
      else out.push(a.name, value);
    }
    return out;
  }
}

export function compileHeaderTransform(config: HeaderTransformConfig | undefined): HeaderTransform | null {
  if (config === undefined) return null;
  if ((config.set === undefined || Object.keys(config.set).length === 0) && (config.add === undefined || Object.keys(config.add).length === 0)
    && (config.remove === undefined || config.remove.length === 0)) return null;
  return new HeaderTransform(config);
}
