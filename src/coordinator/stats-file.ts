/**
 * The run log that outlives the run, as StyleGAN2-ADA keeps stats.jsonl:
 * `<run folder>/stats.jsonl`, one JSON object per line, appended while the
 * run trains and read back by `distgan report` (and by anyone with jq).
 * docs/metrics.md, "Run log (stats.jsonl) and reports", documents every field.
 *
 * Lines (every one has `event`, `time` in Unix seconds and `elapsed`, seconds
 * since this invocation's run_start; `elapsed` restarts at 0 on --resume):
 *   run_start      identity of the run and the resolved config
 *   step           every --log-every steps, at the run's last step, and at the
 *                  last completed step before a worker is lost or the run
 *                  fails: what Prometheus exports per step, plus `step` and
 *                  `images`
 *   worker_joined, worker_lost, checkpoint, sample
 *   peer_rejected  counts, at most one line per 10 s however many peers knock
 *   run_end        ok or the error, and the run summary
 * Non-finite numbers are written as the strings "NaN", "Infinity",
 * "-Infinity" (as /api/status does): a diverged loss must survive the round trip.
 *
 * Durability: the file is append-only, and each line reaches the file in a
 * write of whole lines, so a crash leaves every completed line readable; at
 * most the last line is cut short, which the reader skips and the next
 * --resume removes before appending. Writing never blocks or fails the step
 * loop: lines are queued and written asynchronously in order, and the first
 * error (disk full, I/O error, a disk that stops keeping up) is reported once,
 * after which the file is left alone and training goes on.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { ConfigError, describeError } from '../shared/errors.js';
import type { PhaseSeconds, RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from './observer.js';
import { RateMeter } from './rate-meter.js';
import { nonFiniteAsString } from './status-page.js';

/** File names inside the run folder. */
export const STATS_FILE_NAME = 'stats.jsonl';
export const RUN_LOG_FILE_NAME = 'log.txt';
/** Value of run_start's `format`: bumped if a field changes meaning. */
export const STATS_FORMAT = 'distgan-stats/1';

// ---- the appender ----------------------------------------------------------

export interface LineAppenderOptions {
  /** Told once, when the file cannot be opened or written; every later line is dropped. */
  onError?: (message: string) => void;
  /** Told when open() cut off a partial last line that a process killed mid-write left (bytes removed). */
  onRepair?: (bytes: number) => void;
  /** Most bytes waiting for the disk; past it the disk counts as failed (default 4 MiB). */
  maxPendingBytes?: number;
}

type AppenderState = 'new' | 'opening' | 'open' | 'failed' | 'closed';

/**
 * An append-only text file of whole lines. Lines given before open() are
 * kept in memory (the run folder may not exist yet) and dropped by close()
 * if it never opened, so a refused start writes nothing. Never throws.
 */
export class LineAppender {
  private state: AppenderState = 'new';
  private fh: FileHandle | undefined;
  private pending: string[] = [];
  private pendingBytes = 0;
  private work: Promise<void> = Promise.resolve();
  private busy = false;
  private readonly maxPendingBytes: number;

  constructor(readonly path: string, private readonly opts: LineAppenderOptions = {}) {
    this.maxPendingBytes = opts.maxPendingBytes ?? 4 * 1024 * 1024;
  }

  /** Whether lines still go to the file (false after an error or close). */
  get healthy(): boolean {
    return this.state === 'new' || this.state === 'opening' || this.state === 'open';
  }

  /** Opens (creating or appending to) the file; queued lines follow. Idempotent. */
  open(): void {
    if (this.state !== 'new') return;
    this.state = 'opening';
    this.busy = true;
    this.work = this.openFile().finally(() => {
      this.busy = false;
      this.kick();
    });
  }

  /** Queues one line (a trailing newline is added when missing). */
  write(line: string): void {
    if (!this.healthy) return;
    const text = line.endsWith('\n') ? line : `${line}\n`;
    const bytes = Buffer.byteLength(text);
    if (this.pendingBytes + bytes > this.maxPendingBytes) {
      this.fail(new Error(`the disk has not taken the last ${Math.round(this.pendingBytes / 1024)} KiB of lines`));
      return;
    }
    this.pending.push(text);
    this.pendingBytes += bytes;
    this.kick();
  }

  /** A stream view for writers that want one (a ProgressObserver); each chunk must be whole lines. */
  asWritable(): Writable {
    return new Writable({
      decodeStrings: false,
      write: (chunk: string | Buffer, _enc, cb) => {
        this.write(String(chunk));
        cb();
      },
    });
  }

  /** Resolves once every line queued so far is written (or dropped by a failure). */
  async flush(): Promise<void> {
    for (;;) {
      this.kick();
      if (!this.busy) return;
      await this.work;
    }
  }

  /** Writes what is queued and closes the file; lines written afterwards are dropped. */
  async close(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'closed';
      this.pending = [];
      return;
    }
    await this.flush();
    const fh = this.fh;
    this.fh = undefined;
    if (this.state === 'open') this.state = 'closed';
    await fh?.close().catch(() => {});
  }

  private kick(): void {
    if (this.busy || this.state !== 'open' || this.pending.length === 0) return;
    this.busy = true;
    this.work = this.drain().finally(() => {
      this.busy = false;
    });
  }

  private async drain(): Promise<void> {
    while (this.state === 'open' && this.pending.length > 0) {
      const buf = Buffer.from(this.pending.join(''), 'utf8');
      this.pending = [];
      this.pendingBytes = 0;
      try {
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await this.fh!.write(buf, off, buf.length - off);
          off += bytesWritten;
        }
      } catch (e) {
        this.fail(e);
      }
    }
  }

  private async openFile(): Promise<void> {
    let fh: FileHandle | undefined;
    try {
      // a+: appends land at the end whatever the offset, and the tail can be read for the check below.
      fh = await open(this.path, 'a+');
      const { size } = await fh.stat();
      const cut = size > 0 ? await partialTailBytes(fh, size) : 0;
      if (cut > 0) {
        await fh.truncate(size - cut);
        this.opts.onRepair?.(cut);
      }
      if (this.state !== 'opening') {
        await fh.close();
        return;
      }
      this.fh = fh;
      this.state = 'open';
    } catch (e) {
      await fh?.close().catch(() => {});
      this.fail(e);
    }
  }

  private fail(e: unknown): void {
    if (!this.healthy) return;
    this.state = 'failed';
    this.pending = [];
    this.pendingBytes = 0;
    const fh = this.fh;
    this.fh = undefined;
    void fh?.close().catch(() => {});
    const code = (e as NodeJS.ErrnoException)?.code;
    const why = code === 'ENOSPC' || code === 'EDQUOT' ? 'the disk is full' : describeError(e);
    try {
      this.opts.onError?.(`cannot write ${this.path} (${why}); nothing more goes to it, training goes on`);
    } catch {
      // A failing reporter must not reach the step loop either.
    }
  }
}

/** Bytes after the last newline of the file (0 when it ends with one): a line cut short by a crash. */
async function partialTailBytes(fh: FileHandle, size: number): Promise<number> {
  const CHUNK = 64 * 1024;
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const buf = Buffer.alloc(end - start);
    await fh.read(buf, 0, buf.length, start);
    const nl = buf.lastIndexOf(0x0a);
    if (nl >= 0) return size - (start + nl + 1);
    end = start;
  }
  return size;
}

// ---- the schema ------------------------------------------------------------

interface LineBase {
  /** Unix seconds. */
  time: number;
  /** Seconds since this invocation's run_start (0 on run_start; restarts on --resume). */
  elapsed: number;
}

export interface RunStartLine extends LineBase {
  event: 'run_start';
  format: string;
  runId: string;
  dataset: string;
  model: string;
  backend: string;
  version: string;
  worldSize: number;
  /** 0 for a fresh run, the checkpoint's step after --resume. */
  startStep: number;
  totalSteps: number;
  globalBatch: number;
  outDir: string;
  /** Unix seconds. */
  startedAt: number;
  resumed: boolean;
  logEvery: number;
  /** The resolved run configuration (config.json of this invocation), or null when not given. */
  config: Record<string, unknown> | null;
}

export interface RankLine {
  rank: number;
  /** D + G compute seconds of this rank in the logged step. */
  computeSeconds: number;
  dataSeconds: number;
  /** Unix seconds the coordinator received this rank's last result of the logged step. */
  resultAt: number;
}

export interface StepLine extends LineBase {
  event: 'step';
  /** Absolute step number (counts resumed steps). */
  step: number;
  /** Real images consumed from step 0 up to this step, resumed steps included. */
  images: number;
  /** Values of this step, as distgan_loss and distgan_discriminator_accuracy_ratio show them. */
  dLoss: number;
  gLoss: number;
  dAccuracyReal: number;
  dAccuracyFake: number;
  /** Smoothed over wall time (half-life 10 s), as distgan_throughput_images_per_second; NaN before it is known. */
  imagesPerSecond: number;
  /** Steps this line covers: those since the previous step line of this invocation. */
  steps: number;
  /** Mean and largest wall seconds of the covered steps (distgan_step_seconds). */
  stepSeconds: number;
  stepSecondsMax: number;
  /** Mean seconds of each phase over the covered steps (distgan_step_phase_seconds). */
  phaseSeconds: PhaseSeconds;
  /** Bytes of frames sent to and received from workers over the covered steps (distgan_exchange_bytes_total). */
  exchangeBytes: { sent: number; received: number };
  /** Per rank, in the logged step (distgan_worker_*). */
  ranks: RankLine[];
  /** Workers connected (distgan_workers). */
  workers: number;
}

export interface WorkerJoinedLine extends LineBase { event: 'worker_joined'; rank: number; host: string; pid: number; backend: string }
export interface WorkerLostLine extends LineBase { event: 'worker_lost'; rank: number; reason: string }
export interface CheckpointLine extends LineBase { event: 'checkpoint'; step: number; path: string; writtenAt: number }
export interface SampleLine extends LineBase { event: 'sample'; step: number; path: string }
export interface PeerRejectedLine extends LineBase {
  event: 'peer_rejected';
  /** Rejections since the previous peer_rejected line. */
  count: number;
  /** Rejections since this invocation started (distgan_peer_rejections_total). */
  total: number;
  /** The latest rejection's reason. */
  reason: string;
}

export interface RunEndLine extends LineBase {
  event: 'run_end';
  ok: boolean;
  error: { name: string; code: string | null; message: string } | null;
  /** Last completed step. */
  step: number;
  images: number;
  summary: RunSummary | null;
}

export type StatsLine = RunStartLine | StepLine | WorkerJoinedLine | WorkerLostLine | CheckpointLine | SampleLine | PeerRejectedLine | RunEndLine;

// ---- the writer ------------------------------------------------------------

export interface StatsFileObserverOptions {
  /** Path of stats.jsonl (the run folder must exist by runStarted). */
  path: string;
  /** Steps between step lines: --log-every (default 10). */
  every?: number;
  /** Recorded in run_start as `config`. */
  config?: Readonly<object>;
  /** Told once when the file cannot be written, and when a partial last line was cut. */
  log?: (message: string) => void;
  /** Clock in Unix seconds (default Date.now()/1000); tests inject one. */
  now?: () => number;
  /** Least seconds between two peer_rejected lines (default 10). */
  peerRejectedIntervalSeconds?: number;
}

interface Interval {
  steps: number;
  timedSteps: number;
  stepSeconds: number;
  stepSecondsMax: number;
  phase: Record<keyof PhaseSeconds, { sum: number; n: number }>;
  sent: number;
  received: number;
}

const PHASE_KEYS = ['data', 'd_compute', 'd_exchange', 'g_compute', 'g_exchange', 'apply'] as const satisfies readonly (keyof PhaseSeconds)[];

function emptyInterval(): Interval {
  const phase = {} as Interval['phase'];
  for (const k of PHASE_KEYS) phase[k] = { sum: 0, n: 0 };
  return { steps: 0, timedSteps: 0, stepSeconds: 0, stepSecondsMax: NaN, phase, sent: 0, received: 0 };
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** Unix times to the millisecond, durations to the microsecond: the clocks are no finer, and lines stay short. */
const ms = (t: number): number => (finite(t) ? Math.round(t * 1e3) / 1e3 : t);
const us = (t: number): number => (finite(t) ? Math.round(t * 1e6) / 1e6 : t);

/** Writes stats.jsonl (see the file comment). */
export class StatsFileObserver implements RunObserver {
  readonly appender: LineAppender;
  private readonly every: number;
  private readonly now: () => number;
  private readonly peerInterval: number;
  private info: RunInfo | undefined;
  private images = 0;
  private readonly meter = new RateMeter();
  private readonly connected = new Set<number>();
  private interval = emptyInterval();
  private last: StepReport | undefined;
  private peers = { count: 0, total: 0, reason: '', lastLineAt: -Infinity };

  constructor(private readonly opts: StatsFileObserverOptions) {
    this.every = opts.every ?? 10;
    if (!Number.isInteger(this.every) || this.every < 1) throw new RangeError(`stats interval must be a positive integer of steps, got ${opts.every}`);
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.peerInterval = opts.peerRejectedIntervalSeconds ?? 10;
    this.appender = new LineAppender(opts.path, {
      onError: (m) => opts.log?.(`run log: ${m}`),
      onRepair: (n) => opts.log?.(`run log: removed a partial last line (${n} bytes) of ${opts.path}, left by a process that stopped mid-write`),
    });
  }

  runStarted(info: RunInfo): void {
    this.info = { ...info };
    this.images = info.startStep * info.globalBatch;
    this.meter.reset();
    this.connected.clear();
    this.interval = emptyInterval();
    this.last = undefined;
    this.peers = { count: 0, total: 0, reason: '', lastLineAt: -Infinity };
    this.appender.open();
    this.emit('run_start', info.startedAt, {
      format: STATS_FORMAT,
      runId: info.runId,
      dataset: info.dataset,
      model: info.model,
      backend: info.backend,
      version: info.version,
      worldSize: info.worldSize,
      startStep: info.startStep,
      totalSteps: info.totalSteps,
      globalBatch: info.globalBatch,
      outDir: info.outDir,
      startedAt: info.startedAt,
      resumed: info.startStep > 0,
      logEvery: this.every,
      config: this.opts.config ?? null,
    });
  }

  workerJoined(w: WorkerInfo): void {
    this.connected.add(w.rank);
    this.emit('worker_joined', this.now(), { rank: w.rank, host: w.host, pid: w.pid, backend: w.backend });
  }

  workerLost(rank: number, reason: string): void {
    // The steps done before the loss come first: the run may end right after it.
    if (this.interval.steps > 0) this.writeStep();
    this.connected.delete(rank);
    this.emit('worker_lost', this.now(), { rank, reason });
  }

  stepCompleted(r: StepReport): void {
    const time = finite(r.time) ? r.time : this.now();
    this.last = { ...r, time };
    if (finite(r.images) && r.images > 0) this.images += r.images;
    this.meter.record(r.images, time, r.stepSeconds);
    const iv = this.interval;
    iv.steps++;
    if (finite(r.stepSeconds) && r.stepSeconds >= 0) {
      iv.timedSteps++;
      iv.stepSeconds += r.stepSeconds;
      iv.stepSecondsMax = Number.isNaN(iv.stepSecondsMax) ? r.stepSeconds : Math.max(iv.stepSecondsMax, r.stepSeconds);
    }
    for (const k of PHASE_KEYS) {
      const s = r.phaseSeconds?.[k];
      if (finite(s) && s >= 0) {
        iv.phase[k].sum += s;
        iv.phase[k].n++;
      }
    }
    if (finite(r.exchangeBytes?.sent) && r.exchangeBytes.sent > 0) iv.sent += r.exchangeBytes.sent;
    if (finite(r.exchangeBytes?.received) && r.exchangeBytes.received > 0) iv.received += r.exchangeBytes.received;
    if (r.step % this.every === 0 || (this.info !== undefined && r.step >= this.info.totalSteps)) this.writeStep();
  }

  sampleWritten(step: number, pngPath: string): void {
    this.emit('sample', this.now(), { step, path: pngPath });
  }

  checkpointWritten(step: number, path: string, unixSeconds: number): void {
    this.emit('checkpoint', this.now(), { step, path, writtenAt: ms(unixSeconds) });
  }

  peerRejected(reason: string): void {
    this.peers.count++;
    this.peers.total++;
    this.peers.reason = reason;
    if (this.now() - this.peers.lastLineAt >= this.peerInterval) this.writePeers();
  }

  runEnded(summary: RunSummary | undefined, error?: Error): void {
    if (this.interval.steps > 0) this.writeStep();
    if (this.peers.count > 0) this.writePeers();
    const code: unknown = (error as { code?: unknown } | undefined)?.code;
    this.emit('run_end', this.now(), {
      ok: !error,
      error: error ? { name: error.name, code: typeof code === 'string' ? code : null, message: error.message } : null,
      step: this.last?.step ?? this.info?.startStep ?? 0,
      images: this.images,
      summary: summary ?? null,
    });
  }

  /** Resolves once every line so far is on disk (or dropped by a write failure). */
  flush(): Promise<void> {
    return this.appender.flush();
  }

  async close(): Promise<void> {
    await this.appender.close();
  }

  private writeStep(): void {
    const r = this.last;
    if (!r) return;
    const iv = this.interval;
    this.interval = emptyInterval();
    const phaseSeconds = {} as PhaseSeconds;
    for (const k of PHASE_KEYS) phaseSeconds[k] = iv.phase[k].n > 0 ? us(iv.phase[k].sum / iv.phase[k].n) : NaN;
    this.emit('step', r.time, {
      step: r.step,
      images: this.images,
      dLoss: r.dLoss,
      gLoss: r.gLoss,
      dAccuracyReal: r.dAccuracyReal,
      dAccuracyFake: r.dAccuracyFake,
      imagesPerSecond: ms(this.meter.value ?? NaN),
      steps: iv.steps,
      stepSeconds: iv.timedSteps > 0 ? us(iv.stepSeconds / iv.timedSteps) : NaN,
      stepSecondsMax: us(iv.stepSecondsMax),
      phaseSeconds,
      exchangeBytes: { sent: iv.sent, received: iv.received },
      ranks: (r.ranks ?? []).map((x) => ({ rank: x.rank, computeSeconds: us(x.computeSeconds), dataSeconds: us(x.dataSeconds), resultAt: ms(x.timestamp) })),
      workers: this.connected.size,
    });
  }

  private writePeers(): void {
    const now = this.now();
    this.emit('peer_rejected', now, { count: this.peers.count, total: this.peers.total, reason: this.peers.reason });
    this.peers.count = 0;
    this.peers.lastLineAt = now;
  }

  private emit(event: StatsLine['event'], time: number, fields: Record<string, unknown>): void {
    const start = this.info?.startedAt;
    const elapsed = finite(start) && finite(time) ? Math.max(0, time - start) : 0;
    this.appender.write(JSON.stringify({ event, time: ms(time), elapsed: ms(elapsed), ...fields }, nonFiniteAsString));
  }
}

// ---- the reader ------------------------------------------------------------

export interface ParsedStats {
  /** Every complete line of a known event, in file order. */
  lines: StatsLine[];
  /** The file ended in a line cut short (a crash mid-write), which was skipped. */
  partialLastLine: boolean;
  /** Complete lines of events this distgan does not know (a newer writer), skipped. */
  unknownEvents: number;
}

const KNOWN_EVENTS = new Set<string>(['run_start', 'step', 'worker_joined', 'worker_lost', 'checkpoint', 'sample', 'peer_rejected', 'run_end']);

/** A number as the writer stores it: numbers, or "NaN"/"Infinity"/"-Infinity"; anything else (missing) is NaN. */
export function statNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return NaN;
}

class LineError extends Error {}

function need<T>(ok: boolean, value: T, what: string): T {
  if (!ok) throw new LineError(what);
  return value;
}
const int = (o: Record<string, unknown>, k: string, min = 0): number =>
  need(Number.isInteger(o[k]) && (o[k] as number) >= min, o[k] as number, `"${k}" is not an integer ≥ ${min}: ${JSON.stringify(o[k])}`);
const text = (o: Record<string, unknown>, k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : o[k] === undefined || o[k] === null ? '' : String(o[k]));
const record = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

function normalise(o: Record<string, unknown>): StatsLine {
  const base = { time: statNumber(o.time), elapsed: statNumber(o.elapsed) };
  need(Number.isFinite(base.time), 0, `"time" is not a number: ${JSON.stringify(o.time)}`);
  switch (o.event) {
    case 'run_start':
      return {
        event: 'run_start', ...base,
        format: text(o, 'format'), runId: need(typeof o.runId === 'string', text(o, 'runId'), '"runId" is not a string'),
        dataset: text(o, 'dataset'), model: text(o, 'model'), backend: text(o, 'backend'), version: text(o, 'version'),
        worldSize: int(o, 'worldSize', 1), startStep: int(o, 'startStep'), totalSteps: int(o, 'totalSteps'), globalBatch: int(o, 'globalBatch', 1),
        outDir: text(o, 'outDir'), startedAt: statNumber(o.startedAt), resumed: o.resumed === true,
        logEvery: Number.isInteger(o.logEvery) ? (o.logEvery as number) : NaN,
        config: o.config !== null && typeof o.config === 'object' ? (o.config as Record<string, unknown>) : null,
      };
    case 'step': {
      const ph = record(o.phaseSeconds);
      const ex = record(o.exchangeBytes);
      return {
        event: 'step', ...base,
        step: int(o, 'step', 1), images: statNumber(o.images),
        dLoss: statNumber(o.dLoss), gLoss: statNumber(o.gLoss), dAccuracyReal: statNumber(o.dAccuracyReal), dAccuracyFake: statNumber(o.dAccuracyFake),
        imagesPerSecond: statNumber(o.imagesPerSecond), steps: Number.isInteger(o.steps) ? (o.steps as number) : 1,
        stepSeconds: statNumber(o.stepSeconds), stepSecondsMax: statNumber(o.stepSecondsMax),
        phaseSeconds: Object.fromEntries(PHASE_KEYS.map((k) => [k, statNumber(ph[k])])) as unknown as PhaseSeconds,
        exchangeBytes: { sent: statNumber(ex.sent), received: statNumber(ex.received) },
        ranks: (Array.isArray(o.ranks) ? o.ranks : []).map((x) => {
          const r = record(x);
          return { rank: int(r, 'rank'), computeSeconds: statNumber(r.computeSeconds), dataSeconds: statNumber(r.dataSeconds), resultAt: statNumber(r.resultAt) };
        }),
        workers: Number.isInteger(o.workers) ? (o.workers as number) : NaN,
      };
    }
    case 'worker_joined':
      return { event: 'worker_joined', ...base, rank: int(o, 'rank'), host: text(o, 'host'), pid: Number.isInteger(o.pid) ? (o.pid as number) : 0, backend: text(o, 'backend') };
    case 'worker_lost':
      return { event: 'worker_lost', ...base, rank: int(o, 'rank'), reason: text(o, 'reason') };
    case 'checkpoint':
      return { event: 'checkpoint', ...base, step: int(o, 'step'), path: text(o, 'path'), writtenAt: statNumber(o.writtenAt) };
    case 'sample':
      return { event: 'sample', ...base, step: int(o, 'step'), path: text(o, 'path') };
    case 'peer_rejected':
      return { event: 'peer_rejected', ...base, count: int(o, 'count'), total: int(o, 'total'), reason: text(o, 'reason') };
    case 'run_end': {
      const err = o.error === null || o.error === undefined ? null : record(o.error);
      const summary = o.summary === null || o.summary === undefined ? null : record(o.summary);
      return {
        event: 'run_end', ...base,
        ok: need(typeof o.ok === 'boolean', o.ok as boolean, '"ok" is not true or false'),
        error: err ? { name: text(err, 'name'), code: typeof err.code === 'string' ? err.code : null, message: text(err, 'message') } : null,
        step: int(o, 'step'), images: statNumber(o.images),
        summary: summary ? (Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, typeof v === 'string' && k !== 'backend' ? statNumber(v) : v])) as unknown as RunSummary) : null,
      };
    }
    default:
      throw new LineError(`unknown event ${JSON.stringify(o.event)}`);
  }
}

/**
 * Parses the text of a stats.jsonl. A last line without its newline that is
 * not valid JSON is a write cut short by a crash and is skipped; any other
 * line that is not a JSON object with an `event` is corruption: a ConfigError
 * naming `source` and the line number (nothing half-read is returned).
 * Blank lines are ignored; lines of unknown events are counted and skipped.
 */
export function parseStats(content: string, source: string): ParsedStats {
  const rows = content.split('\n');
  const endsWithNewline = rows[rows.length - 1] === '';
  if (endsWithNewline) rows.pop();
  const lines: StatsLine[] = [];
  let partialLastLine = false;
  let unknownEvents = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!.replace(/\r$/, '');
    if (row.trim() === '') continue;
    const isLast = i === rows.length - 1;
    let value: unknown;
    try {
      value = JSON.parse(row);
    } catch (e) {
      if (isLast && !endsWithNewline) {
        partialLastLine = true;
        continue;
      }
      throw new ConfigError(`${source} line ${i + 1} is not JSON (${(e as Error).message}): the run log is corrupt`);
    }
    const o = record(value);
    if (value === null || typeof value !== 'object' || Array.isArray(value) || typeof o.event !== 'string') {
      throw new ConfigError(`${source} line ${i + 1} is not a JSON object with an "event": the run log is corrupt`);
    }
    if (!KNOWN_EVENTS.has(o.event)) {
      unknownEvents++;
      continue;
    }
    try {
      lines.push(normalise(o));
    } catch (e) {
      if (e instanceof LineError) throw new ConfigError(`${source} line ${i + 1} (${o.event}): ${e.message}: the run log is corrupt`);
      throw e;
    }
  }
  return { lines, partialLastLine, unknownEvents };
}

/** Reads and parses a stats.jsonl file; a missing file is a ConfigError naming it. */
export async function readStatsFile(path: string): Promise<ParsedStats> {
  let content: string;
  try {
    content = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`${path} does not exist: not a run folder of a distgan that keeps a run log`, { cause: e });
    if (code === 'EISDIR') throw new ConfigError(`${path} is a folder, not a run log`, { cause: e });
    throw new ConfigError(`cannot read ${path}: ${describeError(e)}`, { cause: e });
  }
  return parseStats(content, path);
}
