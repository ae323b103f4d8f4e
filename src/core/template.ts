/**
 * Templates in the config: a redirect's `to` and header values, with
 * placeholders in braces such as `https://{host}{path}{query}` or
 * `{client_ip}`. Parsed once at load, rendered per request by joining the
 * parts; `{{` and `}}` write literal braces.
 */

export type TemplatePart = string | { readonly name: string };

export interface Template {
  readonly parts: readonly TemplatePart[];
  /** constant: the template has no placeholder; its value is `parts[0]` (or ""). */
  readonly constant: boolean;
}

/**
 * parseTemplate splits `text` into literals and placeholders. `allowed`
 * decides which names are legal (digits stand for regex groups); it throws
 * an Error naming the first bad placeholder.
 */
export function parseTemplate(text: string, allowed: (name: string) => boolean): Template {
  const parts: TemplatePart[] = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '{' && text[i + 1] === '{') { literal += '{'; i++; continue; }
    if (c === '}' && text[i + 1] === '}') { literal += '}'; i++; continue; }
    if (c === '}') throw new Error(`unmatched "}" at position ${i} (write "}}" for a literal brace)`);
    if (c !== '{') { literal += c; continue; }
    const end = text.indexOf('}', i);
    if (end === -1) throw new Error(`unclosed "{" at position ${i} (write "{{" for a literal brace)`);
    const name = text.slice(i + 1, end).trim();
    if (!allowed(name)) throw new Error(`unknown placeholder {${name}}`);
    if (literal !== '') parts.push(literal);
    literal = '';
    parts.push({ name });
    i = end;
  }
  if (literal !== '' || parts.length === 0) parts.push(literal);
  return { parts, constant: parts.length === 1 && typeof parts[0] === 'string' };
}

/** renderTemplate fills the placeholders with `value(name)`. */
export function renderTemplate(template: Template, value: (name: string) => string): string {
  if (template.constant) return template.parts[0] as string;
  let out = '';
  for (const part of template.parts) out += typeof part === 'string' ? part : value(part.name);
  return out;
}

/** REDIRECT_PLACEHOLDERS may appear in a redirect's `to` (plus the path regex's groups, {1}...). */
export const REDIRECT_PLACEHOLDERS: ReadonlySet<string> = new Set(['host', 'path', 'query']);
/** HEADER_PLACEHOLDERS may appear in header values of requestHeaders and responseHeaders. */
export const HEADER_PLACEHOLDERS: ReadonlySet<string> = new Set(['client_ip', 'host', 'route', 'service', 'request_id']);

export const isGroup = (name: string): boolean => /^\d{1,2}$/.test(name);
