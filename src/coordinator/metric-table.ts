/**
 * Every distgan_* metric, declared once: its name, type, help text, unit and
 * labels, and how its value is read from a RunInfo or a StepReport. The
 * Prometheus observer (metrics.ts) creates its prom-client metrics from this
 * table and applies the readers; docs/metrics.md has one row per entry, and
 * test/unit/metrics.test.ts checks that both agree (as errors.md is checked
 * against ERROR_CODES).
 *
 * Adding a per-step value: put it on StepReport (observer.ts), add one entry
 * here with a `fromStep` reader, and add its row to docs/metrics.md. Metrics
 * driven by events (workers joining, checkpoints, rejected peers) are declared
 * here too, but updated by small explicit code in the observer's event methods.
 *
 * This file is data: it knows no prom-client. How a reading is applied
 * depends only on the type:
 * - gauge: set to the value as it is (a NaN or ±Inf loss is exported as such,
 *   which is what the divergence alert looks for);
 * - counter: increased by the value when it is finite and positive;
 * - histogram: observed when the value is finite and not negative;
 * and a reading whose value is undefined leaves its series as it is.
 */
import type { PhaseSeconds, RunInfo, StepReport } from './observer.js';

/** Metric name prefix for distgan's own series (process and Node.js metrics keep their standard names). */
export const METRIC_PREFIX = 'distgan_';

export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * The values a label takes: the fixed list the code uses (docs/metrics.md lists
 * it, in this order), or 'open' for values known only at run time (a rank, a
 * host, a run id). Open values must still be bounded: never a step number.
 */
export type LabelValues = readonly string[] | 'open';

/** One series' value: its labels (in label-name order) and the value; undefined leaves the series as it is. */
export interface Reading<L extends string> {
  labels: Readonly<Record<L, string>>;
  value: number | undefined;
}

/**
 * What a reader returns: for a metric without labels, the value (undefined:
 * no update); for one with labels, a reading per series it updates.
 */
export type Value<L extends string> = [L] extends [never] ? number | undefined : readonly Reading<L>[];

/** Values the observer works out once per step, before the table reads it. */
export interface StepContext {
  /** Unix seconds at the end of the step: the report's time, or the wall clock when that is not a finite number. */
  time: number;
  /** Smoothed images per second after this step (a RateMeter); undefined while there is none yet. */
  imagesPerSecond: number | undefined;
}

/** A metric's declaration, typed by its metric type T and its label names L (use `metric()` to write one). */
export interface MetricSpec<T extends MetricType, L extends string> {
  /** Full name, `distgan_` included, in base units; counters, and only counters, end in `_total`. */
  name: string;
  type: T;
  /** Prometheus HELP text: one sentence, for someone reading a raw scrape. */
  help: string;
  /**
   * Unit as docs/metrics.md's unit column writes it. Base units only: `s`
   * (a duration), `Unix s` (a timestamp), `bytes`, `ratio 0–1`, `0/1` (a
   * flag), `— (always 1)` (an _info series), `images/s`, or the thing counted
   * (`steps`, `images`, `workers`, …).
   */
  unit: string;
  /** Label names, in the order they are written, each with its values. `{}` for none. */
  labels: { readonly [K in L]: LabelValues };
  /** Histogram bucket upper bounds, in the metric's unit. Histograms only. */
  buckets?: T extends 'histogram' ? readonly number[] : never;
  /** Every combination of the labels' fixed values is exported as 0 from the start, so that rate() sees the first increment. */
  startAtZero?: boolean;
  /** Exported only from its first update on: a gauge whose 0 would mean something false (a 1970 timestamp). */
  absentUntilSet?: boolean;
  /** Series are dropped when a run starts (per-rank and per-run series of an earlier run). */
  resetAtRunStart?: boolean;
  /** The value set when a run starts. Gauges only. */
  fromRun?: T extends 'gauge' ? (info: RunInfo) => Value<L> : never;
  /** The value a completed step sets (gauge), adds (counter) or observes (histogram). */
  fromStep?: (report: StepReport, step: StepContext) => Value<L>;
}

/** A declaration with its types erased: what the observer and the tests iterate over. */
export interface Metric {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly unit: string;
  readonly labels: Readonly<Record<string, LabelValues>>;
  readonly buckets?: readonly number[];
  readonly startAtZero?: boolean;
  readonly absentUntilSet?: boolean;
  readonly resetAtRunStart?: boolean;
  readonly fromRun?: (info: RunInfo) => number | undefined | readonly Reading<string>[];
  readonly fromStep?: (report: StepReport, step: StepContext) => number | undefined | readonly Reading<string>[];
}

/** Declares one metric; T and L are inferred from `type` and `labels`, so readers are checked against the label names. */
function metric<const T extends MetricType, const L extends string = never>(spec: MetricSpec<T, L>): MetricSpec<T, L> {
  return Object.freeze(spec);
}

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

/** The value if it is a finite number, else undefined (leave the series as it is). */
const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** One reading per rank of the step, labelled `rank`; ranks whose value is not finite are left as they are. */
const perRank = (r: StepReport, read: (rs: StepReport['ranks'][number]) => number) =>
  (r.ranks ?? []).map((rs) => ({ labels: { rank: String(rs.rank) }, value: finite(read(rs)) }));

/**
 * The table, in the order the series appear in a scrape. Keys name each
 * metric in the observer's event code; docs/metrics.md has a row per entry.
 */
export const METRICS = {
  // Run
  runInfo: metric({
    name: 'distgan_run_info',
    type: 'gauge',
    help: 'Constant 1, labelled with the run id, dataset, model, compute backend and distgan version.',
    unit: '— (always 1)',
    labels: { run_id: 'open', dataset: 'open', model: 'open', backend: 'open', version: 'open' },
    resetAtRunStart: true,
    fromRun: (i) => [{ labels: { run_id: i.runId, dataset: i.dataset, model: i.model, backend: i.backend, version: i.version }, value: 1 }],
  }),
  // Set to 0 by runEnded.
  runActive: metric({
    name: 'distgan_run_active',
    type: 'gauge',
    help: '1 while a run is in progress (between start and end), else 0.',
    unit: '0/1',
    labels: {},
    fromRun: () => 1,
  }),
  runStart: metric({
    name: 'distgan_run_start_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time the run started.',
    unit: 'Unix s',
    labels: {},
    fromRun: (i) => i.startedAt,
  }),
  targetStep: metric({
    name: 'distgan_target_step',
    type: 'gauge',
    help: 'Step number this invocation runs to.',
    unit: 'steps',
    labels: {},
    fromRun: (i) => i.totalSteps,
  }),
  step: metric({
    name: 'distgan_step',
    type: 'gauge',
    help: 'Number of the latest completed step (absolute, counts resumed steps).',
    unit: 'steps',
    labels: {},
    fromRun: (i) => i.startStep,
    fromStep: (r) => r.step,
  }),

  // Training
  stepsTotal: metric({
    name: 'distgan_steps_total',
    type: 'counter',
    help: 'Training steps completed by this process.',
    unit: 'steps',
    labels: {},
    fromStep: () => 1,
  }),
  imagesTotal: metric({
    name: 'distgan_images_total',
    type: 'counter',
    help: 'Real images consumed by completed steps in this process.',
    unit: 'images',
    labels: {},
    fromStep: (r) => r.images,
  }),
  loss: metric({
    name: 'distgan_loss',
    type: 'gauge',
    help: 'Loss of the latest step, averaged over ranks; NaN or ±Inf when it diverged.',
    unit: 'loss value',
    labels: { network: ['discriminator', 'generator'] },
    fromStep: (r) => [
      { labels: { network: 'discriminator' }, value: r.dLoss },
      { labels: { network: 'generator' }, value: r.gLoss },
    ],
  }),
  accuracy: metric({
    name: 'distgan_discriminator_accuracy_ratio',
    type: 'gauge',
    help: 'Fraction of real (split="real") or generated (split="fake") images the discriminator classified correctly in the latest step.',
    unit: 'ratio 0–1',
    labels: { split: ['real', 'fake'] },
    fromStep: (r) => [
      { labels: { split: 'real' }, value: r.dAccuracyReal },
      { labels: { split: 'fake' }, value: r.dAccuracyFake },
    ],
  }),
  throughput: metric({
    name: 'distgan_throughput_images_per_second',
    type: 'gauge',
    help: 'Images per second, exponentially smoothed over wall time (half-life 10 s by default).',
    unit: 'images/s',
    labels: {},
    fromRun: () => 0,
    fromStep: (_r, s) => s.imagesPerSecond,
  }),

  // Step timing
  stepSeconds: metric({
    name: 'distgan_step_seconds',
    type: 'histogram',
    help: 'Wall time of one step at the coordinator.',
    unit: 's',
    labels: {},
    buckets: DURATION_BUCKETS_SECONDS,
    fromStep: (r) => r.stepSeconds,
  }),
  phaseSeconds: metric({
    name: 'distgan_step_phase_seconds',
    type: 'histogram',
    help: 'Wall time of one phase of a step (slowest rank for compute and data; unexplained remainder for exchange).',
    unit: 's',
    labels: { phase: STEP_PHASES },
    buckets: DURATION_BUCKETS_SECONDS,
    startAtZero: true,
    fromStep: (r) => STEP_PHASES.map((phase) => ({ labels: { phase }, value: r.phaseSeconds?.[phase] })),
  }),

  // Gradient exchange
  exchangeBytes: metric({
    name: 'distgan_exchange_bytes_total',
    type: 'counter',
    help: 'Bytes of message frames the coordinator sent to or received from workers.',
    unit: 'bytes',
    labels: { direction: ['sent', 'received'] },
    startAtZero: true,
    fromStep: (r) => [
      { labels: { direction: 'sent' }, value: r.exchangeBytes?.sent },
      { labels: { direction: 'received' }, value: r.exchangeBytes?.received },
    ],
  }),
  lastStepTimestamp: metric({
    name: 'distgan_last_step_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time the latest step completed; the run start time until the first step does.',
    unit: 'Unix s',
    labels: {},
    // Seeded with the start time so a run that never completes a step reads
    // as stalled after the alert's threshold, instead of since 1970.
    fromRun: (i) => i.startedAt,
    fromStep: (_r, s) => s.time,
  }),

  // Workers. workers, worker_up and worker_info follow workerJoined/workerLost.
  workers: metric({
    name: 'distgan_workers',
    type: 'gauge',
    help: 'Workers currently connected.',
    unit: 'workers',
    labels: {},
    fromRun: () => 0,
  }),
  worldSize: metric({
    name: 'distgan_world_size',
    type: 'gauge',
    help: 'Workers the run expects.',
    unit: 'workers',
    labels: {},
    fromRun: (i) => i.worldSize,
  }),
  workerUp: metric({
    name: 'distgan_worker_up',
    type: 'gauge',
    help: '1 while the worker of this rank is connected, 0 after it was lost.',
    unit: '0/1',
    labels: { rank: 'open' },
    resetAtRunStart: true,
  }),
  workerInfo: metric({
    name: 'distgan_worker_info',
    type: 'gauge',
    help: 'Constant 1 per joined rank, labelled with its host and compute backend.',
    unit: '— (always 1)',
    labels: { rank: 'open', host: 'open', backend: 'open' },
    resetAtRunStart: true,
  }),
  workerCompute: metric({
    name: 'distgan_worker_compute_seconds',
    type: 'gauge',
    help: 'D plus G compute seconds of this rank in the latest step (stragglers stand out here).',
    unit: 's',
    labels: { rank: 'open' },
    resetAtRunStart: true,
    fromStep: (r) => perRank(r, (rs) => rs.computeSeconds),
  }),
  workerData: metric({
    name: 'distgan_worker_data_seconds',
    type: 'gauge',
    help: 'Seconds this rank waited for its slice of data in the latest step.',
    unit: 's',
    labels: { rank: 'open' },
    resetAtRunStart: true,
    fromStep: (r) => perRank(r, (rs) => rs.dataSeconds),
  }),
  workerLastStep: metric({
    name: 'distgan_worker_last_step_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time the coordinator received this rank\'s last result.',
    unit: 'Unix s',
    labels: { rank: 'open' },
    resetAtRunStart: true,
    fromStep: (r) => perRank(r, (rs) => rs.timestamp),
  }),

  // Events
  checkpointsTotal: metric({
    name: 'distgan_checkpoints_total',
    type: 'counter',
    help: 'Checkpoints written by this process.',
    unit: 'checkpoints',
    labels: {},
  }),
  peerRejections: metric({
    name: 'distgan_peer_rejections_total',
    type: 'counter',
    help: 'Peers or messages rejected: by CURVE authentication, the join handshake, or as malformed or unexpected.',
    unit: 'rejections',
    labels: {},
  }),
  workerFailures: metric({
    name: 'distgan_worker_failures_total',
    type: 'counter',
    help: 'Workers lost while a run was in progress.',
    unit: 'workers',
    labels: {},
  }),
  // Absent until the first checkpoint, which reads as "never" instead of a
  // 1970 timestamp (a gauge without labels would export 0).
  checkpointLast: metric({
    name: 'distgan_checkpoint_last_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time the latest checkpoint was written; absent before the first one.',
    unit: 'Unix s',
    labels: {},
    absentUntilSet: true,
  }),
};

/** Keys of METRICS: the observer's handles on its prom-client metrics. */
export type MetricKey = keyof typeof METRICS;

/** Every metric, in scrape order. */
export const METRIC_TABLE: readonly Metric[] = Object.values(METRICS);
