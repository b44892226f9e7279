/**
 * The gradient guard: every rank's contribution is inspected where it is
 * averaged, before anything is summed or sent on, so that one bad worker can
 * neither poison the replicas nor be confused with an honest one.
 *
 * Two halves:
 *   inspectContribution  one O(n) pass over a received gradient (and its BN
 *                        statistics) on arrival: length, finiteness, L2 norm.
 *                        The coordinator runs it as each result lands, so it
 *                        overlaps with waiting for the other ranks.
 *   judge                pure: is that contribution acceptable, given the
 *                        norms accepted recently? The state machine calls it
 *                        and applies the --on-bad-gradient policy.
 *
 * Norms are compared "scaled to the full batch": a rank's contribution is
 * pre-multiplied by its share of the global batch (positions.length / B), so
 * dividing the norm by that share gives the norm of its slice's mean
 * gradient, comparable across ranks with different slice sizes.
 *
 * Defaults (config.ts): --grad-norm-max 1e6 applies from the first step;
 * --grad-norm-factor 1000 compares with the median of the last HISTORY_WINDOW
 * accepted norms of the same phase once HISTORY_WARMUP are known. A DCGAN's
 * scaled gradient norms are O(0.1–100) and move by a few × between steps, so
 * three orders of magnitude flags only what is not training signal.
 */

/** Accepted norms remembered per phase. */
export const HISTORY_WINDOW = 64;
/** Norms needed before the history check applies. */
export const HISTORY_WARMUP = 8;

export interface GuardOptions {
  /** Refuse a norm above factor × median(history); 0 = off. */
  normFactor: number;
  /** Refuse a norm above this; 0 = off. */
  normMax: number;
}

export interface ContributionCheck {
  /** L2 norm of the gradient divided by the rank's batch share (NaN when `problem` is set). */
  norm: number;
  /** Why the contribution is unusable whatever the history (length, NaN/Inf), if it is. */
  problem?: string;
}

/**
 * Length, finiteness and norm of one rank's gradient (already scaled by
 * `share`) and BN statistics. `aux` may be empty (no BN, or G phase of a
 * model without G-side BN); otherwise it must hold `auxLength` floats.
 */
export function inspectContribution(grad: Float32Array, aux: Float32Array, expected: { gradLength: number; auxLength: number }, share: number): ContributionCheck {
  if (grad.length !== expected.gradLength) return { norm: NaN, problem: `its gradient holds ${grad.length} floats, expected ${expected.gradLength}` };
  if (aux.length !== 0 && aux.length !== expected.auxLength) return { norm: NaN, problem: `its BN statistics hold ${aux.length} floats, expected ${expected.auxLength} (or none)` };
  let sumSq = 0;
  for (let i = 0; i < grad.length; i++) {
    const g = grad[i]!;
    // g − g is NaN for NaN and ±Inf, 0 otherwise.
    if (g - g !== 0) return { norm: NaN, problem: `gradient element ${i} of ${grad.length} is ${g}` };
    sumSq += g * g;
  }
  for (let i = 0; i < aux.length; i++) {
    const a = aux[i]!;
    if (a - a !== 0) return { norm: NaN, problem: `BN statistic ${i} of ${aux.length} is ${a}` };
  }
  // Float64 sum of squares of float32 values cannot overflow for any model size here (< 1.2e77 × 2^53).
  return { norm: Math.sqrt(sumSq) / share };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = xs.slice().sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (x: number): string => (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toPrecision(4));

/** Why `check` is refused given the phase's recent accepted norms, or undefined if it is acceptable. */
export function judge(check: ContributionCheck, history: readonly number[], opts: GuardOptions): string | undefined {
  if (check.problem !== undefined) return check.problem;
  if (opts.normMax > 0 && check.norm > opts.normMax) {
    return `its gradient norm ${fmt(check.norm)} (scaled to the full batch) exceeds --grad-norm-max ${fmt(opts.normMax)}`;
  }
  if (opts.normFactor > 0 && history.length >= HISTORY_WARMUP) {
    const m = median(history);
    if (m > 0 && check.norm > opts.normFactor * m) {
      return `its gradient norm ${fmt(check.norm)} (scaled to the full batch) is ${fmt(check.norm / m)}× the median ${fmt(m)} of the last ${history.length} accepted (--grad-norm-factor ${opts.normFactor})`;
    }
  }
  return undefined;
}

/** The history after a phase whose norms were all accepted: newest last, at most HISTORY_WINDOW. */
export function remember(history: readonly number[], norms: readonly number[]): number[] {
  const next = [...history, ...norms];
  return next.length > HISTORY_WINDOW ? next.slice(next.length - HISTORY_WINDOW) : next;
}
