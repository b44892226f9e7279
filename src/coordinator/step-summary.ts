/**
 * What a step and a run amounted to, computed once from what the workers
 * reported and when, by pure functions: every observer (terminal, Prometheus,
 * status page, run log) reads the same StepReport, and summary.json the same
 * RunSummary.
 *
 * Per-rank statistics are weighted by the rank's share of the global batch,
 * so a 2-worker step reports the loss one process would report for the whole
 * batch. Phase seconds take the slowest rank (the one everybody waits for);
 * an exchange is the phase's wall time not explained by that rank's work.
 */
import type { PhaseStatsWire } from '../shared/protocol.js';
import type { PhaseSeconds, RankStep, StepReport } from './observer.js';

/** One rank's answer to one phase, as the coordinator received it. */
export interface RankResult {
  grad: Float32Array;
  aux: Float32Array;
  stats: PhaseStatsWire;
  computeSeconds: number;
  dataSeconds: number;
  applySeconds: number;
  /** Absolute ms (the coordinator's clock) when it arrived. */
  receivedAt: number;
}

/** Absolute ms (the coordinator's clock) at which the step's phases started and ended. */
export interface StepTimes {
  start: number;
  dPhaseStart: number;
  gPhaseStart: number;
  end: number;
}

export interface StepStats {
  dLoss: number;
  gLoss: number;
  dAccuracyReal: number;
  dAccuracyFake: number;
}

const max = (xs: readonly number[]): number => xs.reduce((a, b) => Math.max(a, b), 0);

export function summarizeStep(input: {
  /** Completed steps after this one. */
  step: number;
  globalBatch: number;
  shares: readonly number[];
  d: readonly RankResult[];
  g: readonly RankResult[];
  times: StepTimes;
  bytes: { sent: number; received: number };
}): StepReport {
  const { d, g, shares, times } = input;
  const wsum = (f: (r: RankResult) => number | undefined, rs: readonly RankResult[]): number => rs.reduce((acc, r, i) => acc + shares[i]! * (f(r) ?? NaN), 0);
  const dWall = (times.gPhaseStart - times.dPhaseStart) / 1000;
  const gWall = (times.end - times.gPhaseStart) / 1000;
  const dBusy = max(d.map((r) => r.dataSeconds + r.computeSeconds + r.applySeconds));
  const gBusy = max(g.map((r) => r.computeSeconds + r.applySeconds));
  const phaseSeconds: PhaseSeconds = {
    data: max(d.map((r) => r.dataSeconds)),
    d_compute: max(d.map((r) => r.computeSeconds)),
    d_exchange: Math.max(0, dWall - dBusy),
    g_compute: max(g.map((r) => r.computeSeconds)),
    g_exchange: Math.max(0, gWall - gBusy),
    apply: max(d.map((r, i) => r.applySeconds + g[i]!.applySeconds)),
  };
  const ranks: RankStep[] = d.map((r, i) => ({
    rank: i,
    computeSeconds: r.computeSeconds + g[i]!.computeSeconds,
    dataSeconds: r.dataSeconds,
    timestamp: g[i]!.receivedAt / 1000,
  }));
  return {
    step: input.step,
    images: input.globalBatch,
    dLoss: wsum((r) => r.stats.dLoss, d),
    gLoss: wsum((r) => r.stats.gLoss, g),
    dAccuracyReal: wsum((r) => r.stats.dAccuracyReal, d),
    dAccuracyFake: wsum((r) => r.stats.dAccuracyFake, d),
    stepSeconds: (times.end - times.start) / 1000,
    phaseSeconds,
    exchangeBytes: { ...input.bytes },
    ranks,
    time: times.end / 1000,
  };
}

/**
 * Steady-state throughput and exchange time over a run's steps: the first
 * two steps (one of up to four) pay for kernel and shader warm-up and are
 * left out.
 */
export function steadyRates(stepSeconds: readonly number[], exchangeSeconds: readonly number[], globalBatch: number): { imagesPerSecond: number; exchangeSecondsPerStep: number } {
  const skip = stepSeconds.length > 4 ? 2 : stepSeconds.length > 1 ? 1 : 0;
  const steady = stepSeconds.slice(skip);
  const seconds = steady.reduce((a, b) => a + b, 0);
  const ex = exchangeSeconds.slice(skip);
  return {
    imagesPerSecond: seconds > 0 ? (steady.length * globalBatch) / seconds : 0,
    exchangeSecondsPerStep: ex.length ? ex.reduce((a, b) => a + b, 0) / ex.length : 0,
  };
}
