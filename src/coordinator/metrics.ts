/**
 * Prometheus metrics for a run: the only module that knows prom-client's
 * metric classes. It writes into a registry the caller owns (never
 * prom-client's global one), so that several runs in one process (tests,
 * benchmarks) cannot collide and the HTTP server serves exactly this run.
 *
 * Naming follows Prometheus practice (docs/metrics.md lists every series):
 * one `distgan_` prefix on distgan's own series (the standard `process_*` and
 * `nodejs_*` ones keep their names), base units (`_seconds`, `_bytes`, `_ratio`), `_total`
 * on counters only, and only bounded labels (network, split, phase, direction,
 * rank). A step number is a value (`distgan_step`), never a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, register as globalRegistry } from 'prom-client';
import type { PhaseSeconds, RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from './observer.js';
import { RateMeter } from './rate-meter.js';

/** Metric name prefix for distgan's own series (process and Node.js metrics keep their standard names). */
export const METRIC_PREFIX = 'distgan_';

/** prom-client defaults left out: gauges named like counters (see the constructor). */
export const UNCONVENTIONAL_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

/**
 * Histogram buckets for step and phase durations, in seconds: from 1 ms (an
 * exchange of a small MLP's gradients over loopback) to 60 s (a DCGAN step on
 * the cpu backend), roughly 1-2.5-5 per decade so that quantiles stay within a
 * factor ~2.5 anywhere in that range.
 */
export const DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60,
] as const;

/** The phases of a step, in the order they happen; the label values of distgan_step_phase_seconds. */
export const STEP_PHASES = ['data', 'd_compute', 'd_exchange', 'g_compute', 'g_exchange', 'apply'] as const satisfies readonly (keyof PhaseSeconds)[];

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

/** Exports a run's progress, health and timing as Prometheus metrics. */
export class PrometheusObserver implements RunObserver {
  readonly registry: Registry;

  private readonly runInfo: Gauge<'run_id' | 'dataset' | 'model' | 'backend' | 'version'>;
  private readonly runActive: Gauge;
  private readonly runStart: Gauge;
  private readonly targetStep: Gauge;
  private readonly step: Gauge;
  private readonly stepsTotal: Counter;
  private readonly imagesTotal: Counter;
  private readonly loss: Gauge<'network'>;
  private readonly accuracy: Gauge<'split'>;
  private readonly throughput: Gauge;
  private readonly stepSeconds: Histogram;
  private readonly phaseSeconds: Histogram<'phase'>;
  private readonly exchangeBytes: Counter<'direction'>;
  private readonly lastStepTimestamp: Gauge;
  private readonly workers: Gauge;
  private readonly worldSize: Gauge;
  private readonly workerUp: Gauge<'rank'>;
  private readonly workerInfo: Gauge<'rank' | 'host' | 'backend'>;
  private readonly workerCompute: Gauge<'rank'>;
  private readonly workerData: Gauge<'rank'>;
  private readonly workerLastStep: Gauge<'rank'>;
  private readonly checkpointsTotal: Counter;
  private readonly checkpointLast: Gauge;
  private readonly peerRejections: Counter;
  private readonly workerFailures: Counter;

  private readonly meter: RateMeter;
  private readonly connected = new Set<number>();
  private readonly workerInfoLabels = new Map<number, { rank: string; host: string; backend: string }>();
  private checkpointRegistered = false;
  private running = false;

  constructor(registry: Registry, options: PrometheusObserverOptions = {}) {
    if (!(registry instanceof Registry)) throw new TypeError('PrometheusObserver needs a prom-client Registry');
    // The global registry is shared with every library in the process; a run's
    // metrics must be scoped to the registry its HTTP server serves.
    if (registry === globalRegistry) throw new TypeError('PrometheusObserver must be given its own Registry, not prom-client\'s global one');
    this.registry = registry;
    this.meter = new RateMeter(options.throughputHalfLifeSeconds ?? 10);
    const registers = [registry];
    const p = METRIC_PREFIX;

    this.runInfo = new Gauge({
      name: `${p}run_info`,
      help: 'Constant 1, labelled with the run id, dataset, model, compute backend and distgan version.',
      labelNames: ['run_id', 'dataset', 'model', 'backend', 'version'],
      registers,
    });
    this.runActive = new Gauge({ name: `${p}run_active`, help: '1 while a run is in progress (between start and end), else 0.', registers });
    this.runStart = new Gauge({ name: `${p}run_start_timestamp_seconds`, help: 'Unix time the run started.', registers });
    this.targetStep = new Gauge({ name: `${p}target_step`, help: 'Step number this invocation runs to.', registers });
    this.step = new Gauge({ name: `${p}step`, help: 'Number of the latest completed step (absolute, counts resumed steps).', registers });
    this.stepsTotal = new Counter({ name: `${p}steps_total`, help: 'Training steps completed by this process.', registers });
    this.imagesTotal = new Counter({ name: `${p}images_total`, help: 'Real images consumed by completed steps in this process.', registers });
    this.loss = new Gauge({
      name: `${p}loss`,
      help: 'Loss of the latest step, averaged over ranks; NaN when it diverged.',
      labelNames: ['network'],
      registers,
    });
    this.accuracy = new Gauge({
      name: `${p}discriminator_accuracy_ratio`,
      help: 'Fraction of real (split="real") or generated (split="fake") images the discriminator classified correctly in the latest step.',
      labelNames: ['split'],
      registers,
    });
    this.throughput = new Gauge({
      name: `${p}throughput_images_per_second`,
      help: 'Images per second, exponentially smoothed over wall time (half-life 10 s by default).',
      registers,
    });
    this.stepSeconds = new Histogram({
      name: `${p}step_seconds`,
      help: 'Wall time of one step at the coordinator.',
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers,
    });
    this.phaseSeconds = new Histogram({
      name: `${p}step_phase_seconds`,
      help: 'Wall time of one phase of a step (slowest rank for compute and data; unexplained remainder for exchange).',
      labelNames: ['phase'],
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers,
    });
    this.exchangeBytes = new Counter({
      name: `${p}exchange_bytes_total`,
      help: 'Bytes of message frames the coordinator sent to or received from workers.',
      labelNames: ['direction'],
      registers,
    });
    this.lastStepTimestamp = new Gauge({
      name: `${p}last_step_timestamp_seconds`,
      help: 'Unix time the latest step completed; the run start time until the first step does.',
      registers,
    });
    this.workers = new Gauge({ name: `${p}workers`, help: 'Workers currently connected.', registers });
    this.worldSize = new Gauge({ name: `${p}world_size`, help: 'Workers the run expects.', registers });
    this.workerUp = new Gauge({
      name: `${p}worker_up`,
      help: '1 while the worker of this rank is connected, 0 after it was lost.',
      labelNames: ['rank'],
      registers,
    });
    this.workerInfo = new Gauge({
      name: `${p}worker_info`,
      help: 'Constant 1 per joined rank, labelled with its host and compute backend.',
      labelNames: ['rank', 'host', 'backend'],
      registers,
    });
    this.workerCompute = new Gauge({
      name: `${p}worker_compute_seconds`,
      help: 'D plus G compute seconds of this rank in the latest step (stragglers stand out here).',
      labelNames: ['rank'],
      registers,
    });
    this.workerData = new Gauge({
      name: `${p}worker_data_seconds`,
      help: 'Seconds this rank waited for its slice of data in the latest step.',
      labelNames: ['rank'],
      registers,
    });
    this.workerLastStep = new Gauge({
      name: `${p}worker_last_step_timestamp_seconds`,
      help: 'Unix time the coordinator received this rank\'s last result.',
      labelNames: ['rank'],
      registers,
    });
    this.checkpointsTotal = new Counter({ name: `${p}checkpoints_total`, help: 'Checkpoints written by this process.', registers });
    // Registered on the first checkpoint only: until then the series is absent,
    // which reads as "never" instead of a 1970 timestamp (a labelless
    // prom-client gauge would export 0).
    this.checkpointLast = new Gauge({
      name: `${p}checkpoint_last_timestamp_seconds`,
      help: 'Unix time the latest checkpoint was written; absent before the first one.',
      registers: [],
    });
    this.peerRejections = new Counter({
      name: `${p}peer_rejections_total`,
      help: 'Connections refused by CURVE authentication or the join handshake.',
      registers,
    });
    this.workerFailures = new Counter({
      name: `${p}worker_failures_total`,
      help: 'Workers lost while a run was in progress.',
      registers,
    });

    // Known label values start at zero so rate() sees the first increment.
    for (const direction of ['sent', 'received']) this.exchangeBytes.inc({ direction }, 0);
    for (const phase of STEP_PHASES) this.phaseSeconds.zero({ phase });

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

  runStarted(info: RunInfo): void {
    this.running = true;
    this.meter.reset();
    this.connected.clear();
    this.runInfo.reset();
    this.runInfo.set(
      { run_id: info.runId, dataset: info.dataset, model: info.model, backend: info.backend, version: info.version },
      1,
    );
    this.runActive.set(1);
    this.runStart.set(info.startedAt);
    this.targetStep.set(info.totalSteps);
    this.step.set(info.startStep);
    // Seeded with the start time so a run that never completes a step reads
    // as stalled after the alert's threshold, instead of since 1970.
    this.lastStepTimestamp.set(info.startedAt);
    this.worldSize.set(info.worldSize);
    this.workers.set(0);
    this.workerUp.reset();
    this.workerInfo.reset();
    this.workerInfoLabels.clear();
    this.workerCompute.reset();
    this.workerData.reset();
    this.workerLastStep.reset();
    this.throughput.set(0);
  }

  workerJoined(worker: WorkerInfo): void {
    const rank = String(worker.rank);
    this.connected.add(worker.rank);
    this.workers.set(this.connected.size);
    this.workerUp.set({ rank }, 1);
    const old = this.workerInfoLabels.get(worker.rank);
    if (old) this.workerInfo.remove(old);
    const labels = { rank, host: worker.host, backend: worker.backend };
    this.workerInfoLabels.set(worker.rank, labels);
    this.workerInfo.set(labels, 1);
  }

  workerLost(rank: number): void {
    this.connected.delete(rank);
    this.workers.set(this.connected.size);
    this.workerUp.set({ rank: String(rank) }, 0);
    // Workers leaving after the run ended are a shutdown, not a failure.
    if (this.running) this.workerFailures.inc();
  }

  stepCompleted(r: StepReport): void {
    this.stepsTotal.inc();
    if (isFiniteNumber(r.images) && r.images > 0) this.imagesTotal.inc(r.images);
    this.step.set(r.step);
    // NaN and ±Inf are exported as such: that is what the divergence alert looks for.
    this.loss.set({ network: 'discriminator' }, r.dLoss);
    this.loss.set({ network: 'generator' }, r.gLoss);
    this.accuracy.set({ split: 'real' }, r.dAccuracyReal);
    this.accuracy.set({ split: 'fake' }, r.dAccuracyFake);
    if (isFiniteNumber(r.stepSeconds) && r.stepSeconds >= 0) this.stepSeconds.observe(r.stepSeconds);
    for (const phase of STEP_PHASES) {
      const s = r.phaseSeconds?.[phase];
      if (isFiniteNumber(s) && s >= 0) this.phaseSeconds.observe({ phase }, s);
    }
    if (isFiniteNumber(r.exchangeBytes?.sent) && r.exchangeBytes.sent > 0) this.exchangeBytes.inc({ direction: 'sent' }, r.exchangeBytes.sent);
    if (isFiniteNumber(r.exchangeBytes?.received) && r.exchangeBytes.received > 0) this.exchangeBytes.inc({ direction: 'received' }, r.exchangeBytes.received);
    const time = isFiniteNumber(r.time) ? r.time : Date.now() / 1000;
    this.lastStepTimestamp.set(time);
    for (const rs of r.ranks ?? []) {
      const rank = String(rs.rank);
      if (isFiniteNumber(rs.computeSeconds)) this.workerCompute.set({ rank }, rs.computeSeconds);
      if (isFiniteNumber(rs.dataSeconds)) this.workerData.set({ rank }, rs.dataSeconds);
      if (isFiniteNumber(rs.timestamp)) this.workerLastStep.set({ rank }, rs.timestamp);
    }
    const rate = this.meter.record(r.images, time, r.stepSeconds);
    if (rate !== undefined) this.throughput.set(rate);
  }

  checkpointWritten(_step: number, _path: string, unixSeconds: number): void {
    if (!this.checkpointRegistered) {
      this.registry.registerMetric(this.checkpointLast);
      this.checkpointRegistered = true;
    }
    this.checkpointLast.set(isFiniteNumber(unixSeconds) ? unixSeconds : Date.now() / 1000);
    this.checkpointsTotal.inc();
  }

  peerRejected(): void {
    this.peerRejections.inc();
  }

  runEnded(_summary: RunSummary | undefined): void {
    this.running = false;
    this.runActive.set(0);
  }
}
