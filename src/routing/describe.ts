/**
 * describeRoute: a route as plain data, for /status, `fulcrum validate` and
 * `fulcrum routes`: its name, what it matches and what it does.
 */
import type { RouteConfig } from '../config/schema.js';

export interface RouteDescription {
  readonly name: string;
  /** match: the conditions in words ("host api.example.com, path prefix /v1/"), or "everything". */
  readonly match: string;
  /** action: "service api", "redirect 301 https://...", "respond 503". */
  readonly action: string;
  readonly service: string | null;
}

export function describeRoute(route: { readonly name: string; readonly config: RouteConfig }): RouteDescription {
  const m = route.config.match;
  const parts: string[] = [];
  if (m.hosts !== undefined) parts.push(`host ${m.hosts.join('|')}`);
  if (m.path?.exact !== undefined) parts.push(`path = ${m.path.exact}`);
  if (m.path?.prefix !== undefined) parts.push(`path prefix ${m.path.prefix}`);
  if (m.path?.regex !== undefined) parts.push(`path ~ ${m.path.regex}`);
  if (m.methods !== undefined) parts.push(`method ${m.methods.join('|')}`);
  for (const [name, v] of Object.entries(m.headers ?? {})) parts.push(`header ${name} ${condition(v)}`);
  for (const [name, v] of Object.entries(m.query ?? {})) parts.push(`query ${name} ${condition(v)}`);
  const c = route.config;
  const action = c.service !== undefined ? `service ${c.service}`
    : c.split !== undefined ? `split ${c.split.map((side) => `${side.service} ${side.weight}`).join(', ')}${c.sticky !== undefined && c.sticky !== false ? ' (sticky)' : ''}`
    : c.redirect !== undefined ? `redirect ${c.redirect.status} ${c.redirect.to}`
      : `respond ${c.respond!.status}`;
  const extras = [
    ...(c.mirror === undefined ? [] : [`mirror ${c.mirror.percent}% to ${c.mirror.service}`]),
    ...(c.failover === undefined ? [] : [`failover to ${c.failover.service} on ${c.failover.on.join(', ')}`]),
  ];
  return { name: route.name, match: parts.length === 0 ? 'everything' : parts.join(', '), action: [action, ...extras].join('; '), service: c.service ?? null };
}

function condition(v: string | { regex: string } | { present: boolean }): string {
  if (typeof v === 'string') return `= ${v}`;
  if ('regex' in v) return `~ ${v.regex}`;
  return v.present ? 'present' : 'absent';
}
