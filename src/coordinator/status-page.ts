/**
 * The live status page: a RunObserver that keeps the run's state in memory
 * for GET /api/status (JSON), and the page's static files, all served by
 * http-server.ts.
 *
 * The page is three real files in src/coordinator/status-page/ (index.html,
 * status.css, status.js: plain browser code, no build step). tsc does not copy
 * them into dist/, so they are read from the package's source tree, found from
 * the package root (shared/version.ts) rather than from this module's own
 * location, which differs between src/ (tsx) and dist/src/ (tsc). The package
 * has no "files" list in package.json, so `npm pack` ships src/ with them.
 *
 * Memory is bounded for runs of any length: the curves are downsampled
 * (downsampled-history.ts, ≤ 2,000 points by default), the workers table holds
 * one row per rank, and only the latest sample and checkpoint are remembered.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../shared/version.js';
import type { PhaseSeconds, RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from './observer.js';
import { DownsampledHistory, type HistoryColumns } from './downsampled-history.js';
import { RateMeter } from './rate-meter.js';

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

/** The folder holding the page's static files: <package root>/src/coordinator/status-page. */
export const STATUS_PAGE_DIR = join(PACKAGE_ROOT, 'src', 'coordinator', 'status-page');

/** URL path → file of STATUS_PAGE_DIR and its Content-Type. Nothing else in the folder is served. */
export const STATUS_PAGE_FILES: Readonly<Record<string, { file: string; contentType: string }>> = Object.freeze({
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/status.css': { file: 'status.css', contentType: 'text/css; charset=utf-8' },
  // RFC 9239: text/javascript is the one JavaScript media type.
  '/status.js': { file: 'status.js', contentType: 'text/javascript; charset=utf-8' },
});

/** One static file of the page, read into memory. */
export interface StatusPageAsset {
  /** Absolute path it was read from. */
  path: string;
  contentType: string;
  body: Buffer;
  /** Strong ETag (quoted) of the body, for If-None-Match revalidation. */
  etag: string;
}

/**
 * Reads every file of STATUS_PAGE_FILES from `dir` (default STATUS_PAGE_DIR),
 * keyed by URL path. The files are a few tens of KB and never change while the
 * process runs, so they are read once, when the HTTP server starts. Throws,
 * naming the file, when one is missing or unreadable: an incomplete
 * installation fails at start-up, not when someone first opens the page.
 */
export function loadStatusPageAssets(dir: string = STATUS_PAGE_DIR): ReadonlyMap<string, StatusPageAsset> {
  const assets = new Map<string, StatusPageAsset>();
  for (const [urlPath, { file, contentType }] of Object.entries(STATUS_PAGE_FILES)) {
    const path = join(dir, file);
    let body: Buffer;
    try {
      body = readFileSync(path);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new Error(`status page file ${path} cannot be read (${why}): the distgan installation is incomplete; src/coordinator/status-page/ must be installed with the package`, { cause: e });
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    assets.set(urlPath, { path, contentType, body, etag });
  }
  return assets;
}

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
