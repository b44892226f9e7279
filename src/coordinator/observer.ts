/**
 * The coordinator reports what happens in a run through this small facade,
 * the way StyleGAN's training loop calls `report(name, value)`: the step loop
 * stays free of Prometheus, terminal and HTTP concerns. Observers are the
 * Prometheus metrics (metrics.ts), the terminal progress output (progress.ts)
 * and the status page (status-page.ts). Every method is optional and must not
 * throw or block: the step loop calls them synchronously.
 */

export interface RunInfo {
  runId: string;
  dataset: string;
  model: string;
  backend: string;
  version: string;
  worldSize: number;
  /** Total steps this invocation will run to (absolute step number). */
  totalSteps: number;
  /** Step the run starts from (non-zero after --resume). */
  startStep: number;
  globalBatch: number;
  outDir: string;
  /** Unix seconds. */
  startedAt: number;
}

export interface WorkerInfo {
  rank: number;
  host: string;
  pid: number;
  backend: string;
}

/** Seconds spent in each phase of one step, as seen by the coordinator. */
export interface PhaseSeconds {
  /** Slowest worker's wait for its slice of data. */
  data: number;
  /** Slowest worker's D forward+backward. */
  d_compute: number;
  /** D-phase wall time not explained by the slowest compute: transfer, averaging, waiting. */
  d_exchange: number;
  g_compute: number;
  g_exchange: number;
  /** Slowest worker's optimizer apply (D and G together). */
  apply: number;
}

export interface RankStep {
  rank: number;
  /** D + G compute seconds of this rank in this step. */
  computeSeconds: number;
  dataSeconds: number;
  /** Unix seconds when the coordinator received this rank's last result of the step. */
  timestamp: number;
}

export interface StepReport {
  /** Number of completed steps (1 after the first step). */
  step: number;
  /** Images processed this step (the global batch). */
  images: number;
  dLoss: number;
  gLoss: number;
  dAccuracyReal: number;
  dAccuracyFake: number;
  /** Wall seconds of the whole step at the coordinator. */
  stepSeconds: number;
  phaseSeconds: PhaseSeconds;
  /** Bytes the coordinator sent to and received from workers this step (frames only). */
  exchangeBytes: { sent: number; received: number };
  ranks: RankStep[];
  /** Unix seconds at the end of the step. */
  time: number;
}

export interface RunSummary {
  steps: number;
  images: number;
  imagesPerSecond: number;
  dLoss: number;
  gLoss: number;
  dAccuracyReal: number;
  dAccuracyFake: number;
  worldSize: number;
  backend: string;
  wallSeconds: number;
  /** Mean D+G exchange seconds per steady-state step (transfer, averaging, waiting). */
  exchangeSecondsPerStep: number;
}

export interface RunObserver {
  runStarted?(info: RunInfo): void;
  workerJoined?(worker: WorkerInfo): void;
  workerLost?(rank: number, reason: string): void;
  stepCompleted?(report: StepReport): void;
  /** A sample grid PNG was written (absolute path). */
  sampleWritten?(step: number, pngPath: string): void;
  checkpointWritten?(step: number, path: string, unixSeconds: number): void;
  /**
   * A peer or one of its messages was rejected (CURVE/ZAP, handshake,
   * malformed frame). `quiet` when the per-peer log rate limit is spent:
   * count it, but print nothing.
   */
  peerRejected?(reason: string, quiet: boolean): void;
  runEnded?(summary: RunSummary | undefined, error?: Error): void;
  /** Releases servers and timers. */
  close?(): Promise<void>;
}

/** Calls every observer, isolating their failures from the step loop. */
export class ObserverFanout implements Required<Omit<RunObserver, 'close'>> {
  constructor(private readonly observers: RunObserver[], private readonly onError: (e: unknown) => void = () => {}) {}

  private each(fn: (o: RunObserver) => void): void {
    for (const o of this.observers) {
      try {
        fn(o);
      } catch (e) {
        this.onError(e);
      }
    }
  }

  runStarted(info: RunInfo): void { this.each((o) => o.runStarted?.(info)); }
  workerJoined(w: WorkerInfo): void { this.each((o) => o.workerJoined?.(w)); }
  workerLost(rank: number, reason: string): void { this.each((o) => o.workerLost?.(rank, reason)); }
  stepCompleted(r: StepReport): void { this.each((o) => o.stepCompleted?.(r)); }
  sampleWritten(step: number, p: string): void { this.each((o) => o.sampleWritten?.(step, p)); }
  checkpointWritten(step: number, p: string, t: number): void { this.each((o) => o.checkpointWritten?.(step, p, t)); }
  peerRejected(reason: string, quiet = false): void { this.each((o) => o.peerRejected?.(reason, quiet)); }
  runEnded(s: RunSummary | undefined, e?: Error): void { this.each((o) => o.runEnded?.(s, e)); }

  async close(): Promise<void> {
    for (const o of this.observers) {
      try {
        await o.close?.();
      } catch (e) {
        this.onError(e);
      }
    }
  }
}
