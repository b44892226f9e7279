/**
 * Prometheus metrics for a run: the only module that knows prom-client's
 * metric classes. It writes into a registry the caller owns (never
 * prom-client's global one), so that several runs in one process (tests,
 * benchmarks) cannot collide and the HTTP server serves exactly this run.
 *
 * Every distgan_* metric is declared once, in metric-table.ts (name, type,
 * help, unit, labels, and how a RunInfo or StepReport sets it); this module
 * creates the prom-client metrics from that table and applies its readers.
 * Naming follows Prometheus practice (docs/metrics.md lists every series, and
 * a test holds it to the table): one `distgan_` prefix on distgan's own series
 * (the standard `process_*` and `nodejs_*` ones keep their names), base units
 * (`_seconds`, `_bytes`, `_ratio`), `_total` on counters only, and only
 * bounded labels (network, split, phase, direction, rank). A step number is a
 * value (`distgan_step`), never a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, register as globalRegistry } from 'prom-client';
import { METRICS, type Metric, type MetricKey, type MetricSpec, type Reading } from './metric-table.js';
import type { RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from './observer.js';
import { RateMeter } from './rate-meter.js';

export { DURATION_BUCKETS_SECONDS, METRIC_PREFIX, METRIC_TABLE, METRICS, STEP_PHASES } from './metric-table.js';

/** prom-client defaults left out: gauges named like counters (see the constructor). */
export const UNCONVENTIONAL_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

export interface PrometheusObserverOptions {
  /**
   * Register prom-client's process and Node.js runtime metrics (CPU, memory,
   * event-loop lag, GC) under their standard names (`process_*`, `nodejs_*`).
   * Default true. Only one observer per registry may do this (the names would collide).
   */
  processMetrics?: boolean;
  /** Half-life of distgan_throughput_images_per_second's smoothing, in wall seconds. Default 10. */
  throughputHalfLifeSeconds?: number;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The prom-client class of a declaration, with its label names. */
type PromMetric<S> = S extends MetricSpec<infer T, infer L>
  ? T extends 'counter' ? Counter<L> : T extends 'gauge' ? Gauge<L> : Histogram<L>
  : never;

/** The observer's prom-client metrics, by table key. */
type Handles = { readonly [K in MetricKey]: PromMetric<(typeof METRICS)[K]> };

/** A declaration with its prom-client metric, tagged by type so that updates narrow. */
type Bound =
  | { spec: Metric; type: 'counter'; prom: Counter<string> }
  | { spec: Metric; type: 'gauge'; prom: Gauge<string> }
  | { spec: Metric; type: 'histogram'; prom: Histogram<string> };

function create(spec: Metric, registers: Registry[]): Bound {
  const config = { name: spec.name, help: spec.help, labelNames: Object.keys(spec.labels), registers };
  switch (spec.type) {
    case 'counter':
      return { spec, type: 'counter', prom: new Counter(config) };
    case 'gauge':
      return { spec, type: 'gauge', prom: new Gauge(config) };
    case 'histogram':
      if (!spec.buckets) throw new TypeError(`histogram ${spec.name} declares no buckets`);
      return { spec, type: 'histogram', prom: new Histogram({ ...config, buckets: [...spec.buckets] }) };
  }
}

/** Every combination of the labels' fixed values (for startAtZero). */
function labelCombinations(spec: Metric): Record<string, string>[] {
  let combos: Record<string, string>[] = [{}];
  for (const [name, values] of Object.entries(spec.labels)) {
    if (values === 'open') throw new TypeError(`${spec.name}: startAtZero needs fixed values for label ${name}`);
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  }
  return combos;
}

/** Exports a run's progress, health and timing as Prometheus metrics. */
export class PrometheusObserver implements RunObserver {
  readonly registry: Registry;

  /** The prom-client metrics, by METRICS key, for the event methods. */
  private readonly m: Handles;
  private readonly bound: Bound[] = [];
  /** absentUntilSet metrics not registered yet. */
  private readonly unregistered = new Set<Counter<string> | Gauge<string> | Histogram<string>>();

  private readonly meter: RateMeter;
  private readonly connected = new Set<number>();
  private readonly workerInfoLabels = new Map<number, { rank: string; host: string; backend: string }>();
  private running = false;

  constructor(registry: Registry, options: PrometheusObserverOptions = {}) {
    if (!(registry instanceof Registry)) throw new TypeError('PrometheusObserver needs a prom-client Registry');
    // The global registry is shared with every library in the process; a run's
    // metrics must be scoped to the registry its HTTP server serves.
    if (registry === globalRegistry) throw new TypeError('PrometheusObserver must be given its own Registry, not prom-client\'s global one');
    this.registry = registry;
    this.meter = new RateMeter(options.throughputHalfLifeSeconds ?? 10);

    const handles: Record<string, Bound['prom']> = {};
    for (const [key, spec] of Object.entries(METRICS) as [MetricKey, Metric][]) {
      const b = create(spec, spec.absentUntilSet ? [] : [registry]);
      if (spec.absentUntilSet) this.unregistered.add(b.prom);
      this.bound.push(b);
      handles[key] = b.prom;
    }
    this.m = handles as unknown as Handles;
    // Known label values start at zero so rate() sees the first increment.
    for (const b of this.bound) {
      if (!b.spec.startAtZero) continue;
      for (const labels of labelCombinations(b.spec)) {
        if (b.type === 'histogram') b.prom.zero(labels);
        else if (b.type === 'counter') b.prom.inc(labels, 0);
        else b.prom.set(labels, 0);
      }
    }

    if (options.processMetrics ?? true) {
      // Unprefixed: stock Node.js and process dashboards (process_cpu_seconds_total,
      // nodejs_heap_size_used_bytes, …) match as they are.
      collectDefaultMetrics({ register: registry });
      // prom-client's three *_total gauges break the naming rule (promtool check
      // metrics flags them); each is the sum over `type` of its labelled twin
      // (nodejs_active_handles etc.), which stays: sum() gives the same number.
      for (const name of UNCONVENTIONAL_DEFAULT_METRICS) registry.removeSingleMetric(name);
    }
  }

  /** Registers an absentUntilSet metric on its first update. */
  private present(prom: Bound['prom']): void {
    if (this.unregistered.delete(prom)) this.registry.registerMetric(prom);
  }

  /** Applies one reading by the metric's type (see metric-table.ts): set, add if positive, observe if not negative. */
  private update(b: Bound, labels: Readonly<Record<string, string>> | undefined, v: number): void {
    switch (b.type) {
      case 'gauge':
        this.present(b.prom);
        if (labels) b.prom.set(labels, v);
        else b.prom.set(v);
        return;
      case 'counter':
        if (!isFiniteNumber(v) || v <= 0) return;
        this.present(b.prom);
        if (labels) b.prom.inc(labels, v);
        else b.prom.inc(v);
        return;
      case 'histogram':
        if (!isFiniteNumber(v) || v < 0) return;
        this.present(b.prom);
        if (labels) b.prom.observe(labels, v);
        else b.prom.observe(v);
        return;
    }
  }

  /** Applies what a table reader returned: a number (no labels) or one reading per series; undefined changes nothing. */
  private apply(b: Bound, value: number | undefined | readonly Reading<string>[]): void {
    if (value === undefined) return;
    if (typeof value === 'number') {
      this.update(b, undefined, value);
      return;
    }
    for (const r of value) if (r.value !== undefined) this.update(b, r.labels, r.value);
  }

  runStarted(info: RunInfo): void {
    this.running = true;
    this.meter.reset();
    this.connected.clear();
    this.workerInfoLabels.clear();
    for (const b of this.bound) {
      if (b.spec.resetAtRunStart) b.prom.reset();
      if (b.spec.fromRun) this.apply(b, b.spec.fromRun(info));
    }
  }

  workerJoined(worker: WorkerInfo): void {
    const rank = String(worker.rank);
    this.connected.add(worker.rank);
    this.m.workers.set(this.connected.size);
    this.m.workerUp.set({ rank }, 1);
    const old = this.workerInfoLabels.get(worker.rank);
    if (old) this.m.workerInfo.remove(old);
    const labels = { rank, host: worker.host, backend: worker.backend };
    this.workerInfoLabels.set(worker.rank, labels);
    this.m.workerInfo.set(labels, 1);
  }

  workerLost(rank: number): void {
    this.connected.delete(rank);
    this.m.workers.set(this.connected.size);
    this.m.workerUp.set({ rank: String(rank) }, 0);
    // Workers leaving after the run ended are a shutdown, not a failure.
    if (this.running) this.m.workerFailures.inc();
  }

  stepCompleted(r: StepReport): void {
    const time = isFiniteNumber(r.time) ? r.time : Date.now() / 1000;
    const step = { time, imagesPerSecond: this.meter.record(r.images, time, r.stepSeconds) };
    for (const b of this.bound) if (b.spec.fromStep) this.apply(b, b.spec.fromStep(r, step));
  }

  checkpointWritten(_step: number, _path: string, unixSeconds: number): void {
    this.present(this.m.checkpointLast);
    this.m.checkpointLast.set(isFiniteNumber(unixSeconds) ? unixSeconds : Date.now() / 1000);
    this.m.checkpointsTotal.inc();
  }

  peerRejected(): void {
    this.m.peerRejections.inc();
  }

  runEnded(_summary: RunSummary | undefined): void {
    this.running = false;
    this.m.runActive.set(0);
  }
}
