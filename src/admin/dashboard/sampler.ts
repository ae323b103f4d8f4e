/**
 * Sampler turns the balancer's cumulative counters into live figures for
 * the dashboard: requests per second, error rate and p50/p99 latency over
 * a recent window (not since start, which would hide a slowdown happening
 * now), plus a history of one chart point per second for the last minutes.
 *
 * It reads `metrics.byBackend` on a timer, never on the request path: one
 * sample is a copy of a few counters per backend.
 */
import { LatencyHistogram, type BackendMetrics, type Metrics } from '../../observe/metrics.js';

/** LiveFigures are the recent-window figures of one backend or of all. */
export interface LiveFigures {
  /** rps: requests finished per second. */
  readonly rps: number;
  /** errorRate: share (0..1) of responses that were 5xx or no response at all; null without requests. */
  readonly errorRate: number | null;
  /** p50/p99: latency quantiles in milliseconds; null without requests. */
  readonly p50: number | null;
  readonly p99: number | null;
}

/** ChartPoint is one point of the dashboard's charts (all backends together). */
export interface ChartPoint extends LiveFigures {
  /** t: epoch milliseconds. */
  readonly t: number;
}

interface Sample {
  readonly t: number;
  readonly requests: number;
  readonly errors: number;
  readonly counts: Float64Array;
}

export interface SamplerOptions {
  /** windowSamples: how many samples the live figures span (with 500 ms ticks, 20 = 10 s). */
  readonly windowSamples?: number;
  /** pointEvery: one chart point every this many samples (2 = one per second at 500 ms ticks). */
  readonly pointEvery?: number;
  /** historyPoints: how many chart points are kept (300 = five minutes at one per second). */
  readonly historyPoints?: number;
  /** startedAt: when the counters started from zero (the balancer's start); now by default. */
  readonly startedAt?: number;
}

const NO_TRAFFIC: LiveFigures = { rps: 0, errorRate: null, p50: null, p99: null };

export class Sampler {
  readonly #metrics: Metrics;
  readonly #window: number;
  readonly #pointEvery: number;
  readonly #historyPoints: number;
  /** series: the last `window + 1` samples of each metrics key (backend id, or "none"). */
  readonly #series = new Map<string, Sample[]>();
  readonly #history: ChartPoint[] = [];
  #ticks = 0;
  /** previousT: when the previous sample was taken (before the first: when the counters started, at zero). */
  #previousT: number;
  readonly #scratch = new LatencyHistogram();

  constructor(metrics: Metrics, options: SamplerOptions = {}) {
    this.#metrics = metrics;
    this.#window = options.windowSamples ?? 20;
    this.#pointEvery = options.pointEvery ?? 2;
    this.#historyPoints = options.historyPoints ?? 300;
    this.#previousT = options.startedAt ?? Date.now();
  }

  /** sample records one sample of every counter; every `pointEvery` samples it returns a new chart point. */
  sample(now = Date.now()): ChartPoint | null {
    const keep = Math.max(this.#window, this.#pointEvery) + 1;
    const live = new Set<string>();
    for (const [service, byId] of this.#metrics.byService) for (const [backend, m] of byId) {
      const id = seriesKey(service, backend);
      live.add(id);
      const sample = takeSample(m, now);
      let series = this.#series.get(id);
      const last = series?.[series.length - 1];
      // New counters (or counters that went backwards: the backend left and came back
      // under the same id) started from zero after the previous tick.
      if (series === undefined || (last !== undefined && sample.requests < last.requests)) {
        series = [{ t: this.#previousT, requests: 0, errors: 0, counts: new Float64Array(sample.counts.length) }];
        this.#series.set(id, series);
      }
      series.push(sample);
      if (series.length > keep) series.shift();
    }
    for (const id of this.#series.keys()) if (!live.has(id)) this.#series.delete(id);
    this.#previousT = now;
    this.#ticks++;
    if (this.#ticks % this.#pointEvery !== 0) return null;
    const point: ChartPoint = { t: now, ...this.#figures([...this.#series.values()], this.#pointEvery) };
    this.#history.push(point);
    if (this.#history.length > this.#historyPoints) this.#history.shift();
    return point;
  }

  /** figures are one backend's live figures over the window (a backend of the default service unless `service` says). */
  figures(id: string, service = this.#metrics.defaultService): LiveFigures {
    const series = this.#series.get(seriesKey(service, id));
    return series === undefined ? NO_TRAFFIC : this.#figures([series], this.#window);
  }

  /** serviceFigures are the live figures of all of one service's backends together. */
  serviceFigures(service: string): LiveFigures {
    const prefix = seriesKey(service, '');
    const list: Sample[][] = [];
    for (const [key, series] of this.#series) if (key.startsWith(prefix)) list.push(series);
    return this.#figures(list, this.#window);
  }

  /** totals are the live figures of all requests together (including those no backend served). */
  totals(): LiveFigures {
    return this.#figures([...this.#series.values()], this.#window);
  }

  history(): readonly ChartPoint[] {
    return this.#history;
  }

  /** figures over the last `span` samples of each series (or as many as there are). */
  #figures(seriesList: readonly Sample[][], span: number): LiveFigures {
    const h = this.#scratch;
    h.reset();
    let requests = 0;
    let errors = 0;
    let seconds = 0;
    for (const series of seriesList) {
      const last = series[series.length - 1];
      const first = series[Math.max(0, series.length - 1 - span)];
      if (last === undefined || first === undefined || first === last) continue;
      requests += last.requests - first.requests;
      errors += last.errors - first.errors;
      seconds = Math.max(seconds, (last.t - first.t) / 1000);
      for (let i = 0; i < h.counts.length; i++) h.counts[i]! += last.counts[i]! - first.counts[i]!;
    }
    if (seconds === 0 || requests <= 0) return NO_TRAFFIC;
    h.count = requests;
    return {
      rps: round(requests / seconds),
      errorRate: round(errors / requests, 4),
      p50: round(h.quantile(0.5) * 1000),
      p99: round(h.quantile(0.99) * 1000),
    };
  }
}

/** seriesKey: backend ids are unique within a service only. */
function seriesKey(service: string, backend: string): string {
  return `${service}\u0000${backend}`;
}

function takeSample(m: BackendMetrics, t: number): Sample {
  let errors = 0;
  for (const [code, n] of m.codes) if (code === 0 || code >= 500) errors += n;
  return { t, requests: m.requests, errors, counts: Float64Array.from(m.latency.counts) };
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
