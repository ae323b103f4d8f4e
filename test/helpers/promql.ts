/**
 * Just enough PromQL and Prometheus text format to check the operations kit
 * against a real scrape: which metrics an expression selects (with the label
 * names its matchers use), and which series a /metrics answer holds. Not a
 * parser: it only has to tell metric names from functions, keywords, label
 * names, durations and Grafana variables, which PromQL's lexical rules make
 * possible without a grammar.
 */

/** Selector: a metric an expression reads, and the label names of its matchers ({service=~"..."}). */
export interface Selector {
  readonly name: string;
  readonly labels: readonly string[];
}

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'matchers'; text: string }
  | { kind: 'punct'; text: string }
  | { kind: 'skip' };

/** Clauses whose parenthesised list holds label names, not series. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Keywords and literals that look like identifiers. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

/** closing returns the index just past the bracket that closes the one at `start`, skipping quoted strings. */
function closing(text: string, start: number, open: string, close: string): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' || c === "'" || c === '`') i = endOfString(text, i) - 1;
    else if (c === open) depth++;
    else if (c === close && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced "${open}" at ${start} in: ${text}`);
}

function endOfString(text: string, start: number): number {
  const quote = text[start]!;
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\' && quote !== '`') i++;
    else if (text[i] === quote) return i + 1;
  }
  throw new Error(`unterminated string at ${start} in: ${text}`);
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    const rest = expr.slice(i);
    let m: RegExpMatchArray | null;
    if (/\s/.test(c)) i++;
    else if (c === '#') i = expr.includes('\n', i) ? expr.indexOf('\n', i) : expr.length;
    else if (c === '"' || c === "'" || c === '`') { i = endOfString(expr, i); tokens.push({ kind: 'skip' }); }
    else if (c === '{') { const end = closing(expr, i, '{', '}'); tokens.push({ kind: 'matchers', text: expr.slice(i + 1, end - 1) }); i = end; }
    // Ranges and subqueries ([5m], [$__rate_interval], [1h:1m]) hold durations only.
    else if (c === '[') { i = closing(expr, i, '[', ']'); tokens.push({ kind: 'skip' }); }
    // Grafana variables: $name, ${name}, ${name:format}, [[name]] (the last is caught as a range).
    else if ((m = rest.match(/^\$(\{[^}]*\}|\w+)/)) !== null) { i += m[0].length; tokens.push({ kind: 'skip' }); }
    // Numbers, and durations such as 5m after `offset`; hex and exponents included.
    else if ((m = rest.match(/^(0x[0-9a-f]+|(\d+\.?\d*|\.\d+)(e[+-]?\d+)?[a-z]*)/i)) !== null) { i += m[0].length; tokens.push({ kind: 'skip' }); }
    else if ((m = rest.match(/^[a-zA-Z_:][\w:]*/)) !== null) { i += m[0].length; tokens.push({ kind: 'ident', text: m[0] }); }
    else { tokens.push({ kind: 'punct', text: c }); i++; }
  }
  return tokens;
}

/** matcherLabels returns the label names of a matcher list: `a="x", b=~"y"` gives a and b. */
export function matcherLabels(matchers: string): string[] {
  return [...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/g)].map((m) => m[1]!);
}

/** selectors lists the metrics a PromQL expression reads, in order, with the label names of their matchers. */
export function selectors(expr: string): Selector[] {
  const tokens = tokenize(expr);
  const out: Selector[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'ident') continue;
    const next = tokens[i + 1];
    const word = t.text.toLowerCase();
    if (GROUPING.has(word)) {
      // by (a, b): skip the label list (group_left may also stand alone).
      if (next?.kind === 'punct' && next.text === '(') {
        let depth = 0;
        for (i++; i < tokens.length; i++) {
          const u = tokens[i]!;
          if (u.kind === 'punct' && u.text === '(') depth++;
          else if (u.kind === 'punct' && u.text === ')' && --depth === 0) break;
        }
      }
      continue;
    }
    if (KEYWORDS.has(word)) continue;
    // A name followed by "(" is a function or an aggregation; one followed by by/without, an aggregation (sum by (a) (...)).
    if (next?.kind === 'punct' && next.text === '(') continue;
    if (next?.kind === 'ident' && (next.text === 'by' || next.text === 'without')) continue;
    out.push({ name: t.text, labels: next?.kind === 'matchers' ? matcherLabels(next.text) : [] });
  }
  return out;
}

/** labelValuesSelector returns the series expression of a Grafana `label_values(<series>, <label>)` query. */
export function labelValuesSelector(query: string): { series: string; label: string } | null {
  const m = query.trim().match(/^label_values\(\s*(.*?)\s*,\s*([a-zA-Z_]\w*)\s*\)$/s);
  return m === null ? null : { series: m[1]!, label: m[2]! };
}

/** Scrape: what a Prometheus text exposition holds: each family's type, and each series name's label names. */
export interface Scrape {
  readonly types: ReadonlyMap<string, string>;
  readonly series: ReadonlyMap<string, ReadonlySet<string>>;
}

export function parseExposition(text: string): Scrape {
  const types = new Map<string, string>();
  const series = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = line.match(/^# TYPE (\S+) (\S+)$/);
    if (type !== null) { types.set(type[1]!, type[2]!); continue; }
    if (line === '' || line.startsWith('#')) continue;
    const sample = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+\S+/);
    if (sample === null) throw new Error(`not a sample line: ${line}`);
    let labels = series.get(sample[1]!);
    if (labels === undefined) series.set(sample[1]!, labels = new Set());
    for (const name of matcherLabels(sample[2] ?? '')) labels.add(name);
  }
  return { types, series };
}

/**
 * family names the metric family a series name belongs to: a histogram's
 * `_bucket`, `_sum` and `_count` series belong to the histogram (and only
 * to a histogram; `x_count` of a gauge `x` is not a series of it).
 */
export function family(scrape: Scrape, name: string): string | undefined {
  if (scrape.types.has(name)) return scrape.types.get(name) === 'histogram' ? undefined : name;
  const m = name.match(/^(.*)_(bucket|sum|count)$/);
  if (m !== null && (scrape.types.get(m[1]!) === 'histogram' || (scrape.types.get(m[1]!) === 'summary' && m[2] !== 'bucket'))) return m[1]!;
  return undefined;
}
