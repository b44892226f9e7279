/**
 * Full-run curves in bounded memory. A run of a million steps must still show
 * its whole loss history on the status page, so each stored point is the mean
 * of a bucket of consecutive steps; when the buffer fills, neighbouring buckets
 * are merged pairwise and the bucket width doubles. Memory stays at most
 * `capacity` points however long the run, and every step contributes equally
 * to the curve (no step is silently skipped, unlike keeping every k-th value).
 *
 * A NaN in a bucket makes that point NaN: a divergence must stay visible as a
 * gap in the curve, not be averaged away.
 */
export interface HistoryColumns<K extends string> {
  /** Steps per stored point (1 until the first merge, then 2, 4, ...). */
  stride: number;
  /** Last step number of each point's bucket. */
  steps: number[];
  /** One column per series, aligned with `steps`. */
  series: Record<K, number[]>;
}

export class DownsampledHistory<K extends string> {
  private stride = 1;
  private readonly steps: number[] = [];
  private readonly columns: Record<K, number[]>;
  private pendingCount = 0;
  private pendingStep = 0;
  private readonly pendingSums: Record<K, number>;

  /**
   * @param keys the series stored per step.
   * @param capacity most points kept (default 2,000: about one per horizontal
   *   pixel of a wide chart). Must be an even number ≥ 4 so a merge halves it.
   */
  constructor(private readonly keys: readonly K[], private readonly capacity = 2000) {
    if (!Number.isInteger(capacity) || capacity < 4 || capacity % 2 !== 0) {
      throw new RangeError(`history capacity must be an even integer >= 4, got ${capacity}`);
    }
    this.columns = Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<K, number[]>;
    this.pendingSums = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  }

  /** Adds one step's values; a missing value counts as NaN. */
  add(step: number, values: Partial<Record<K, number>>): void {
    for (const k of this.keys) this.pendingSums[k] += values[k] ?? NaN;
    this.pendingCount++;
    this.pendingStep = step;
    if (this.pendingCount < this.stride) return;
    this.steps.push(step);
    for (const k of this.keys) this.columns[k].push(this.pendingSums[k] / this.pendingCount);
    this.clearPending();
    if (this.steps.length >= this.capacity) this.mergePairs();
  }

  /** Number of points a snapshot would hold now. */
  get length(): number {
    return this.steps.length + (this.pendingCount > 0 ? 1 : 0);
  }

  /** A copy of the curve, with the partly filled bucket (the newest steps) as its last point. */
  snapshot(): HistoryColumns<K> {
    const steps = this.steps.slice();
    const series = Object.fromEntries(this.keys.map((k) => [k, this.columns[k].slice()])) as Record<K, number[]>;
    if (this.pendingCount > 0) {
      steps.push(this.pendingStep);
      for (const k of this.keys) series[k].push(this.pendingSums[k] / this.pendingCount);
    }
    return { stride: this.stride, steps, series };
  }

  clear(): void {
    this.stride = 1;
    this.steps.length = 0;
    for (const k of this.keys) this.columns[k].length = 0;
    this.clearPending();
  }

  private clearPending(): void {
    this.pendingCount = 0;
    for (const k of this.keys) this.pendingSums[k] = 0;
  }

  private mergePairs(): void {
    // Every stored bucket holds exactly `stride` steps, so a plain mean of two
    // neighbours is the mean of their 2·stride steps.
    const half = this.steps.length / 2;
    for (let i = 0; i < half; i++) {
      this.steps[i] = this.steps[2 * i + 1]!;
      for (const k of this.keys) {
        const c = this.columns[k];
        c[i] = (c[2 * i]! + c[2 * i + 1]!) / 2;
      }
    }
    this.steps.length = half;
    for (const k of this.keys) this.columns[k].length = half;
    this.stride *= 2;
  }
}
