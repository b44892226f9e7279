/**
 * A smoothed rate (images or steps per second) for the progress line, the
 * status page and the throughput gauge. Prometheus users should prefer
 * rate(distgan_images_total[...]); this exists for readers that have no query
 * language (a terminal, a JSON line, one gauge for a single-stat panel).
 *
 * It is an exponentially weighted moving average over wall time, not over
 * steps: each observation's weight grows with the time it covers, so a pause
 * (a checkpoint, a slow worker) pulls the rate down in proportion to its length
 * instead of counting as one more step. The elapsed time of an observation is
 * the wall time since the previous one, which includes the coordinator's own
 * overhead between steps; the first observation, having no predecessor, uses
 * the seconds the caller says it took.
 */
export class RateMeter {
  private smoothed: number | undefined;
  private lastTime: number | undefined;

  /**
   * @param halfLifeSeconds wall seconds after which an old observation counts
   *   half as much as a new one (default 10 s: steady enough to read, quick
   *   enough that a real slowdown shows within a minute).
   */
  constructor(private readonly halfLifeSeconds = 10) {
    if (!(halfLifeSeconds > 0) || !Number.isFinite(halfLifeSeconds)) {
      throw new RangeError(`RateMeter half-life must be a positive number of seconds, got ${halfLifeSeconds}`);
    }
  }

  /**
   * Records `amount` units completed at unix time `time` (seconds).
   * `fallbackSeconds` is used as the elapsed time when there is no previous
   * observation or the clock did not advance. Returns the smoothed rate, or
   * undefined while no usable observation has been made. Non-finite or
   * negative input is ignored: a rate must never turn NaN because one step
   * reported garbage.
   */
  record(amount: number, time: number, fallbackSeconds: number): number | undefined {
    if (!Number.isFinite(amount) || amount < 0 || !Number.isFinite(time)) return this.smoothed;
    let dt = this.lastTime === undefined ? fallbackSeconds : time - this.lastTime;
    if (!(dt > 0) || !Number.isFinite(dt)) dt = fallbackSeconds;
    this.lastTime = time;
    if (!(dt > 0) || !Number.isFinite(dt)) return this.smoothed;
    const instant = amount / dt;
    if (this.smoothed === undefined) {
      this.smoothed = instant;
    } else {
      const alpha = 1 - Math.pow(2, -dt / this.halfLifeSeconds);
      this.smoothed += alpha * (instant - this.smoothed);
    }
    return this.smoothed;
  }

  /** The current smoothed rate per second, undefined before the first usable observation. */
  get value(): number | undefined {
    return this.smoothed;
  }

  /** Forgets all history (a new run starts). */
  reset(): void {
    this.smoothed = undefined;
    this.lastTime = undefined;
  }
}
