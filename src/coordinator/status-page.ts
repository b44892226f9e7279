/**
 * What the status page shows: a RunObserver that keeps the run's state in
 * memory for GET /api/status (JSON) and the page itself (status-page-html.ts),
 * served by http-server.ts.
 *
 * Memory is bounded for runs of any length: the curves are downsampled
 * (downsampled-history.ts, ≤ 2,000 points by default), the workers table holds
 * one row per rank, and only the latest sample and checkpoint are remembered.
 */
import type { PhaseSeconds, RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from './observer.js';
import { DownsampledHistory, type HistoryColumns } from './downsampled-history.js';
import { RateMeter } from './rate-meter.js';
import { STATUS_PAGE_HTML } from './status-page-html.js';

export type RunState = 'waiting' | 'running' | 'finished' | 'failed';

export const HISTORY_SERIES = ['dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake', 'imagesPerSecond'] as const;
export type HistorySeries = (typeof HISTORY_SERIES)[number];

export interface WorkerStatus {
  rank: number;
  host: string;
  pid: number;
  backend: string;
  connected: boolean;
  /** Why the worker was lost, null while connected. */
  lostReason: string | null;
  /** Unix seconds. */
  joinedAt: number;
  /** Unix seconds of this rank's last result, null before its first step. */
  lastStepAt: number | null;
  /** Seconds since lastStepAt at the time of the snapshot. */
  lastStepAgeSeconds: number | null;
  /** D + G compute seconds in this rank's latest step. */
  computeSeconds: number | null;
  dataSeconds: number | null;
}

export interface StatusSnapshot {
  /** Unix seconds when the snapshot was taken. */
  generatedAt: number;
  state: RunState;
  /** The error that ended the run, when state is 'failed'. */
  error: string | null;
  run: RunInfo | null;
  progress: {
    step: number;
    startStep: number;
    totalSteps: number;
    /** Real images consumed since this invocation started. */
    images: number;
    /** Smoothed over wall time, null before the first step. */
    imagesPerSecond: number | null;
    stepsPerSecond: number | null;
    /** Seconds to totalSteps at the current smoothed rate, null when unknown. */
    etaSeconds: number | null;
    elapsedSeconds: number | null;
    lastStepAt: number | null;
    lastStepAgeSeconds: number | null;
    /** Wall seconds of the latest step and its phases. */
    stepSeconds: number | null;
    phaseSeconds: PhaseSeconds | null;
  };
  latest: { dLoss: number; gLoss: number; dAccuracyReal: number; dAccuracyFake: number } | null;
  history: HistoryColumns<HistorySeries>;
  workers: WorkerStatus[];
  /** The latest sample grid; `url` changes with every new sample so browsers refetch it. */
  sample: { step: number; url: string; writtenAt: number } | null;
  checkpoint: { step: number; path: string; writtenAt: number; ageSeconds: number } | null;
  exchange: { sentBytes: number; receivedBytes: number };
  peerRejections: number;
  workerFailures: number;
  summary: RunSummary | null;
}

export interface StatusObserverOptions {
  /** Most points kept per curve (default 2,000; even, ≥ 4). */
  historyCapacity?: number;
  /** Clock in unix seconds (default Date.now()/1000); tests inject one. */
  now?: () => number;
}

interface WorkerRow {
  info: WorkerInfo;
  connected: boolean;
  lostReason: string | null;
  joinedAt: number;
  lastStepAt: number | null;
  computeSeconds: number | null;
  dataSeconds: number | null;
}

/** URL path of the latest sample grid, served by http-server.ts. */
export const SAMPLE_URL_PATH = '/samples/latest.png';

/**
 * JSON.stringify replacer: JSON has no NaN or Infinity, and turning a
 * diverged loss into null would hide exactly what the page must show, so
 * non-finite numbers travel as the strings "NaN", "Infinity", "-Infinity".
 */
export function nonFiniteAsString(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

export class StatusObserver implements RunObserver {
  private readonly now: () => number;
  private readonly history: DownsampledHistory<HistorySeries>;
  private readonly imageMeter = new RateMeter();
  private readonly stepMeter = new RateMeter();
  private state: RunState = 'waiting';
  private error: string | null = null;
  private run: RunInfo | null = null;
  private step = 0;
  private images = 0;
  private lastStepAt: number | null = null;
  private lastReport: StepReport | null = null;
  private readonly workers = new Map<number, WorkerRow>();
  private sample: { step: number; path: string; writtenAt: number } | null = null;
  private checkpoint: { step: number; path: string; writtenAt: number } | null = null;
  private sentBytes = 0;
  private receivedBytes = 0;
  private peerRejections = 0;
  private workerFailures = 0;
  private summary: RunSummary | null = null;

  constructor(options: StatusObserverOptions = {}) {
    this.now = options.now ?? (() => Date.now() / 1000);
    this.history = new DownsampledHistory(HISTORY_SERIES, options.historyCapacity ?? 2000);
  }

  runStarted(info: RunInfo): void {
    this.state = 'running';
    this.error = null;
    this.run = { ...info };
    this.step = info.startStep;
    this.images = 0;
    this.lastStepAt = null;
    this.lastReport = null;
    this.history.clear();
    this.imageMeter.reset();
    this.stepMeter.reset();
    this.workers.clear();
    this.sample = null;
    this.checkpoint = null;
    this.sentBytes = 0;
    this.receivedBytes = 0;
    this.peerRejections = 0;
    this.workerFailures = 0;
    this.summary = null;
  }

  workerJoined(worker: WorkerInfo): void {
    this.workers.set(worker.rank, {
      info: { ...worker },
      connected: true,
      lostReason: null,
      joinedAt: this.now(),
      lastStepAt: null,
      computeSeconds: null,
      dataSeconds: null,
    });
  }

  workerLost(rank: number, reason: string): void {
    const row = this.workers.get(rank);
    if (row) {
      row.connected = false;
      row.lostReason = reason;
    } else {
      this.workers.set(rank, {
        info: { rank, host: '?', pid: 0, backend: '?' },
        connected: false,
        lostReason: reason,
        joinedAt: this.now(),
        lastStepAt: null,
        computeSeconds: null,
        dataSeconds: null,
      });
    }
    if (this.state === 'running') this.workerFailures++;
  }

  stepCompleted(r: StepReport): void {
    const time = Number.isFinite(r.time) ? r.time : this.now();
    this.step = r.step;
    if (Number.isFinite(r.images) && r.images > 0) this.images += r.images;
    this.lastStepAt = time;
    this.lastReport = r;
    const ips = this.imageMeter.record(r.images, time, r.stepSeconds);
    this.stepMeter.record(1, time, r.stepSeconds);
    this.history.add(r.step, {
      dLoss: r.dLoss,
      gLoss: r.gLoss,
      dAccuracyReal: r.dAccuracyReal,
      dAccuracyFake: r.dAccuracyFake,
      imagesPerSecond: ips ?? NaN,
    });
    if (Number.isFinite(r.exchangeBytes?.sent)) this.sentBytes += r.exchangeBytes.sent;
    if (Number.isFinite(r.exchangeBytes?.received)) this.receivedBytes += r.exchangeBytes.received;
    for (const rs of r.ranks ?? []) {
      const row = this.workers.get(rs.rank);
      if (!row) continue;
      row.lastStepAt = rs.timestamp;
      row.computeSeconds = rs.computeSeconds;
      row.dataSeconds = rs.dataSeconds;
    }
  }

  sampleWritten(step: number, pngPath: string): void {
    this.sample = { step, path: pngPath, writtenAt: this.now() };
  }

  checkpointWritten(step: number, path: string, unixSeconds: number): void {
    this.checkpoint = { step, path, writtenAt: unixSeconds };
  }

  peerRejected(): void {
    this.peerRejections++;
  }

  runEnded(summary: RunSummary | undefined, error?: Error): void {
    this.summary = summary ?? null;
    this.state = error ? 'failed' : 'finished';
    this.error = error ? error.message : null;
  }

  /** Absolute path of the latest sample grid PNG, undefined before the first. */
  latestSamplePath(): string | undefined {
    return this.sample?.path;
  }

  /** The self-contained status page (it fetches /api/status itself). */
  pageHtml(): string {
    return STATUS_PAGE_HTML;
  }

  snapshot(): StatusSnapshot {
    const now = this.now();
    const run = this.run;
    const r = this.lastReport;
    const stepsPerSecond = this.stepMeter.value ?? null;
    const remaining = run ? Math.max(0, run.totalSteps - this.step) : 0;
    let etaSeconds: number | null = null;
    if (run && remaining === 0 && this.state !== 'waiting') etaSeconds = 0;
    else if (stepsPerSecond !== null && stepsPerSecond > 0) etaSeconds = remaining / stepsPerSecond;
    return {
      generatedAt: now,
      state: this.state,
      error: this.error,
      run: run ? { ...run } : null,
      progress: {
        step: this.step,
        startStep: run?.startStep ?? 0,
        totalSteps: run?.totalSteps ?? 0,
        images: this.images,
        imagesPerSecond: this.imageMeter.value ?? null,
        stepsPerSecond,
        etaSeconds: this.state === 'running' || etaSeconds === 0 ? etaSeconds : null,
        elapsedSeconds: run ? now - run.startedAt : null,
        lastStepAt: this.lastStepAt,
        lastStepAgeSeconds: this.lastStepAt === null ? null : Math.max(0, now - this.lastStepAt),
        stepSeconds: r ? r.stepSeconds : null,
        phaseSeconds: r ? { ...r.phaseSeconds } : null,
      },
      latest: r ? { dLoss: r.dLoss, gLoss: r.gLoss, dAccuracyReal: r.dAccuracyReal, dAccuracyFake: r.dAccuracyFake } : null,
      history: this.history.snapshot(),
      workers: [...this.workers.values()]
        .sort((a, b) => a.info.rank - b.info.rank)
        .map((w) => ({
          rank: w.info.rank,
          host: w.info.host,
          pid: w.info.pid,
          backend: w.info.backend,
          connected: w.connected,
          lostReason: w.lostReason,
          joinedAt: w.joinedAt,
          lastStepAt: w.lastStepAt,
          lastStepAgeSeconds: w.lastStepAt === null ? null : Math.max(0, now - w.lastStepAt),
          computeSeconds: w.computeSeconds,
          dataSeconds: w.dataSeconds,
        })),
      sample: this.sample
        ? { step: this.sample.step, url: `${SAMPLE_URL_PATH}?step=${this.sample.step}&t=${Math.round(this.sample.writtenAt * 1000)}`, writtenAt: this.sample.writtenAt }
        : null,
      checkpoint: this.checkpoint ? { ...this.checkpoint, ageSeconds: Math.max(0, now - this.checkpoint.writtenAt) } : null,
      exchange: { sentBytes: this.sentBytes, receivedBytes: this.receivedBytes },
      peerRejections: this.peerRejections,
      workerFailures: this.workerFailures,
      summary: this.summary ? { ...this.summary } : null,
    };
  }

  /** The snapshot as JSON, NaN and Infinity kept as strings (see nonFiniteAsString). */
  snapshotJson(): string {
    return JSON.stringify(this.snapshot(), nonFiniteAsString);
  }
}
