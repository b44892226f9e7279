/**
 * Terminal output of a run, chosen by --log-format:
 *   bar    one line redrawn in place (a terminal): step/total, img/s, D/G loss,
 *          D accuracy on real and fake images, ETA; events print above it.
 *   plain  a timestamped line every `every` steps and one per event (logs, CI).
 *   json   one JSON object per line (machines): run_started, step (every
 *          `every` steps), worker_joined, worker_lost, checkpoint, sample,
 *          peer_rejected, run_ended, and log (lines passed to printLine).
 *          Non-finite numbers become null (JSON has no NaN); `nonFinite` then
 *          names the affected fields.
 *   auto   bar when the stream is a terminal, plain otherwise.
 * Writes are synchronous calls on the stream; nothing here throws into the
 * step loop (ObserverFanout isolates us anyway).
 */
import type { Writable } from 'node:stream';
import type { RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from './observer.js';
import { RateMeter } from './rate-meter.js';

export type ProgressFormat = 'auto' | 'bar' | 'plain' | 'json';

export interface ProgressObserverOptions {
  format: ProgressFormat;
  /** Where to write. Default: process.stdout for json, process.stderr otherwise (stdout stays free for results). */
  stream?: NodeJS.WriteStream | Writable;
  /** Whether the stream is a terminal. Default: the stream's own isTTY. Only 'auto' consults it. */
  isTTY?: boolean;
  /** Steps between plain lines and json step events (default 10; the first and last step always print). */
  every?: number;
  /** Least milliseconds between two redraws of the bar (default 100; events and the last step always redraw). */
  redrawIntervalMs?: number;
  /** Bar width in columns when the stream does not say, or says 0 (default 100). */
  columns?: number;
}

const CLEAR_LINE = '\r\x1b[2K';
const BAR_SEP = ' │ ';

/** Seconds as "45s", "3m12s", "2h05m", "3d04h". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

function fixed(v: number, digits: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'Inf' : '-Inf';
  return v.toFixed(digits);
}

function rate(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '--';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export class ProgressObserver implements RunObserver {
  private readonly stream: NodeJS.WriteStream | Writable;
  private readonly mode: 'bar' | 'plain' | 'json';
  private readonly every: number;
  private readonly redrawIntervalMs: number;
  private readonly fallbackColumns: number;
  private readonly imageMeter = new RateMeter();
  private readonly stepMeter = new RateMeter();
  private info: RunInfo | undefined;
  private last: StepReport | undefined;
  /** True while a bar line is on screen without a newline after it. */
  private barShown = false;
  private lastDrawMs = 0;
  /** After runEnded the bar is final: events print as lines without redrawing it. */
  private ended = false;

  constructor(opts: ProgressObserverOptions) {
    const format = opts.format;
    if (!['auto', 'bar', 'plain', 'json'].includes(format)) {
      throw new RangeError(`log format must be auto, bar, plain or json, got ${String(format)}`);
    }
    this.stream = opts.stream ?? (format === 'json' ? process.stdout : process.stderr);
    const tty = opts.isTTY ?? Boolean((this.stream as NodeJS.WriteStream).isTTY);
    this.mode = format === 'auto' ? (tty ? 'bar' : 'plain') : format;
    this.every = opts.every ?? 10;
    if (!Number.isInteger(this.every) || this.every < 1) throw new RangeError(`progress interval must be a positive integer of steps, got ${opts.every}`);
    this.redrawIntervalMs = opts.redrawIntervalMs ?? 100;
    this.fallbackColumns = opts.columns ?? 100;
    // A terminal or pipe that goes away (EPIPE) reports asynchronously as an
    // 'error' event; unhandled, that would kill the coordinator mid-run.
    if (this.stream.listenerCount('error') === 0) this.stream.on('error', () => {});
  }

  /** The format actually used after resolving 'auto'. */
  get resolvedFormat(): 'bar' | 'plain' | 'json' {
    return this.mode;
  }

  runStarted(info: RunInfo): void {
    this.info = info;
    this.last = undefined;
    this.ended = false;
    this.imageMeter.reset();
    this.stepMeter.reset();
    if (this.mode === 'json') {
      this.json('run_started', {
        runId: info.runId, dataset: info.dataset, model: info.model, backend: info.backend, version: info.version,
        worldSize: info.worldSize, startStep: info.startStep, totalSteps: info.totalSteps, globalBatch: info.globalBatch,
        outDir: info.outDir, startedAt: info.startedAt,
      });
    } else {
      this.event(
        `run ${info.runId}: ${info.dataset} / ${info.model} on ${info.backend}, ${info.worldSize} worker(s), ` +
          `steps ${info.startStep}→${info.totalSteps}, global batch ${info.globalBatch}, out ${info.outDir}`,
      );
    }
  }

  workerJoined(w: WorkerInfo): void {
    if (this.mode === 'json') this.json('worker_joined', { rank: w.rank, host: w.host, pid: w.pid, backend: w.backend });
    else this.event(`worker ${w.rank} joined: ${w.host} pid ${w.pid}, backend ${w.backend}`);
  }

  workerLost(rank: number, reason: string): void {
    if (this.mode === 'json') this.json('worker_lost', { rank, reason });
    else this.event(`worker ${rank} lost: ${reason}`);
  }

  stepCompleted(r: StepReport): void {
    this.last = r;
    const time = Number.isFinite(r.time) ? r.time : Date.now() / 1000;
    this.imageMeter.record(r.images, time, r.stepSeconds);
    this.stepMeter.record(1, time, r.stepSeconds);
    const isLast = this.info !== undefined && r.step >= this.info.totalSteps;
    const isFirst = this.info !== undefined && r.step === this.info.startStep + 1;
    const periodic = r.step % this.every === 0 || isFirst || isLast;
    if (this.mode === 'bar') {
      const nowMs = Date.now();
      if (isLast || nowMs - this.lastDrawMs >= this.redrawIntervalMs || !this.barShown) this.drawBar();
    } else if (this.mode === 'plain') {
      if (periodic) this.write(`${this.stamp()} ${this.statusLine(false)}\n`);
    } else if (periodic) {
      this.json('step', {
        step: r.step,
        totalSteps: this.info?.totalSteps ?? null,
        images: r.images,
        dLoss: r.dLoss,
        gLoss: r.gLoss,
        dAccuracyReal: r.dAccuracyReal,
        dAccuracyFake: r.dAccuracyFake,
        stepSeconds: r.stepSeconds,
        phaseSeconds: r.phaseSeconds,
        imagesPerSecond: this.imageMeter.value ?? null,
        etaSeconds: this.eta() ?? null,
        exchangeBytes: r.exchangeBytes,
        time: r.time,
      });
    }
  }

  sampleWritten(step: number, pngPath: string): void {
    if (this.mode === 'json') this.json('sample', { step, path: pngPath });
    else this.event(`sample grid at step ${step}: ${pngPath}`);
  }

  checkpointWritten(step: number, path: string, unixSeconds: number): void {
    if (this.mode === 'json') this.json('checkpoint', { step, path, writtenAt: unixSeconds });
    else this.event(`checkpoint at step ${step}: ${path}`);
  }

  peerRejected(reason: string, quiet = false): void {
    if (quiet) return;
    if (this.mode === 'json') this.json('peer_rejected', { reason });
    else this.event(`peer rejected: ${reason}`);
  }

  runEnded(summary: RunSummary | undefined, error?: Error): void {
    if (this.mode === 'json') {
      this.json('run_ended', {
        ok: !error,
        error: error ? { name: error.name, code: (error as { code?: unknown }).code ?? null, message: error.message } : null,
        summary: summary ?? null,
      });
      return;
    }
    if (this.mode === 'bar') {
      // The final state of the bar stays on screen, the summary goes below it.
      if (this.last) this.drawBar();
      if (this.barShown) this.write('\n');
      this.barShown = false;
      this.ended = true;
    }
    const parts: string[] = [];
    if (summary) {
      parts.push(
        `${summary.steps} steps, ${summary.images} images in ${formatDuration(summary.wallSeconds)} ` +
          `(${rate(summary.imagesPerSecond)} img/s on ${summary.worldSize} × ${summary.backend}` +
          `${Number.isFinite(summary.exchangeSecondsPerStep) ? `, exchange ${(summary.exchangeSecondsPerStep * 1000).toFixed(1)} ms/step` : ''}); ` +
          `D ${fixed(summary.dLoss, 4)} G ${fixed(summary.gLoss, 4)} acc real ${fixed(summary.dAccuracyReal, 2)} fake ${fixed(summary.dAccuracyFake, 2)}`,
      );
    }
    if (error) this.event(`run failed: ${error.message}${parts.length ? ` after ${parts[0]}` : ''}`);
    else this.event(`run finished: ${parts[0] ?? 'no steps'}`);
  }

  /**
   * Prints a line of someone else's output (the CLI's log, a worker's stderr)
   * without breaking the display: above the bar in bar mode, as is in plain
   * mode, as a {"event":"log"} object in json mode (so the stream stays one
   * JSON object per line). `source` (e.g. "rank 1") prefixes the line as
   * "[rank 1] …", or becomes the object's `source` field. Anything written to the same stream by other means
   * while a bar is shown lands on the bar's line.
   */
  printLine(line: string, source?: string): void {
    const text = line.replace(/\r?\n$/, '');
    if (this.mode === 'json') this.json('log', { ...(source === undefined ? {} : { source }), message: text });
    else if (this.mode === 'bar') this.event(source === undefined ? text : `[${source}] ${text}`);
    else this.write(source === undefined ? `${text}\n` : `[${source}] ${text}\n`);
  }

  async close(): Promise<void> {
    if (this.barShown) {
      this.write('\n');
      this.barShown = false;
    }
  }

  private eta(): number | undefined {
    const sps = this.stepMeter.value;
    if (!this.info || !this.last || sps === undefined || !(sps > 0)) return undefined;
    return Math.max(0, this.info.totalSteps - this.last.step) / sps;
  }

  /**
   * The status fields, in display order, each with its priority (lower =
   * kept longer): step and ETA first, then throughput, losses, accuracies.
   * "step 120/2000 6% | 512 img/s | D 0.6931 G 0.7210 | acc real 0.52 fake 0.48 | ETA 3m12s"
   */
  private statusFields(compact: boolean): Array<{ text: string; priority: number }> {
    const r = this.last;
    const total = this.info?.totalSteps;
    if (!r) return [{ text: 'waiting for the first step', priority: 0 }];
    // On the bar, fields are padded to steady widths so the line (and the bar
    // next to it) does not jitter as numbers grow and shrink.
    const pad = (v: string, n: number) => (compact ? v.padStart(n) : v);
    const pct = total ? ` ${pad(`${Math.floor((100 * r.step) / total)}%`, 4)}` : '';
    return [
      { text: `step ${pad(String(r.step), String(total ?? '').length)}${total ? `/${total}` : ''}${pct}`, priority: 0 },
      { text: `${pad(rate(this.imageMeter.value), 5)} img/s`, priority: 2 },
      { text: `D ${pad(fixed(r.dLoss, 4), 7)} G ${pad(fixed(r.gLoss, 4), 7)}`, priority: 3 },
      { text: `acc real ${fixed(r.dAccuracyReal, 2)} fake ${fixed(r.dAccuracyFake, 2)}`, priority: 4 },
      { text: `ETA ${pad(formatDuration(this.eta() ?? NaN), 5)}`, priority: 1 },
    ];
  }

  private statusLine(compact: boolean): string {
    return this.statusFields(compact).map((f) => f.text).join(compact ? BAR_SEP : '  ');
  }

  /** Terminal width: the stream's, when it reports a real one (0 or undefined means unknown). */
  private columns(): number {
    const c = (this.stream as NodeJS.WriteStream).columns;
    return typeof c === 'number' && c > 0 ? c : this.fallbackColumns;
  }

  private drawBar(): void {
    // One column spare: writing into the last one wraps on some terminals.
    const cols = Math.max(20, this.columns() - 1);
    // Drop whole fields, least important first, until the text fits; never
    // cut a field (the ETA used to be the first thing cut at 80 columns).
    let fields = this.statusFields(true);
    const fits = (fs: typeof fields): boolean => fs.map((f) => f.text).join(BAR_SEP).length <= cols;
    while (fields.length > 1 && !fits(fields)) {
      const worst = fields.reduce((w, f) => (f.priority > w.priority ? f : w));
      fields = fields.filter((f) => f !== worst);
    }
    let text = fields.map((f) => f.text).join(BAR_SEP);
    if (text.length > cols) text = `${text.slice(0, cols - 1)}…`;
    const total = this.info?.totalSteps ?? 0;
    const frac = total > 0 && this.last ? Math.min(1, this.last.step / total) : 0;
    // The bar gets whatever width the text leaves, between 10 and 30 cells;
    // the line never wraps (a wrapped line cannot be redrawn with \r).
    const room = cols - text.length - 3;
    let line = text;
    if (room >= 10) {
      const width = Math.min(30, room);
      const filled = Math.round(frac * width);
      line = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${text}`;
    }
    this.write(`${CLEAR_LINE}${line}`);
    this.barShown = true;
    this.lastDrawMs = Date.now();
  }

  /** A one-off line; in bar mode it goes above the bar, which is then redrawn. */
  private event(message: string): void {
    if (this.mode === 'bar') {
      this.write(`${this.barShown ? CLEAR_LINE : ''}${message}\n`);
      this.barShown = false;
      if (this.last && !this.ended) this.drawBar();
    } else {
      this.write(`${this.stamp()} ${message}\n`);
    }
  }

  private json(event: string, fields: Record<string, unknown>): void {
    const nonFinite: string[] = [];
    const line = JSON.stringify({ event, ts: Date.now() / 1000, ...fields }, function (this: unknown, key, value) {
      if (typeof value === 'number' && !Number.isFinite(value)) {
        nonFinite.push(key);
        return null;
      }
      return value;
    });
    this.write(nonFinite.length ? `${line.slice(0, -1)},"nonFinite":${JSON.stringify(nonFinite)}}\n` : `${line}\n`);
  }

  private stamp(): string {
    return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  private write(s: string): void {
    try {
      this.stream.write(s);
    } catch {
      // A closed terminal (EPIPE) must not stop training.
    }
  }
}
