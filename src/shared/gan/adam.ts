/**
 * Adam over flat Float32Arrays, in plain JavaScript.
 *
 * Why not tfjs's optimizer: every worker and the coordinator's mirror must
 * produce bit-identical weights from the same averaged gradient, on any
 * backend, and the moments must be exactly the checkpointed state. Here each
 * element is updated in float64 with only +, −, ×, ÷ and √ (all correctly
 * rounded in IEEE 754) and stored back as float32; the bias-correction powers
 * β^t are built by repeated squaring rather than Math.pow, whose last bit is
 * implementation-defined. Same inputs ⇒ same bits in every process.
 *
 * Update (Kingma & Ba, Algorithm 1), t = step after increment:
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   w ← w − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)
 *
 * The moments stay finite. v is computed in float64 but stored as float32, so
 * one element with |g| above ~5.8e20 (at β2 = 0.999) would store v = +Inf and
 * freeze that weight for good (every later update divides by √Inf). Rather
 * than clamp, which would silently change the maths of that element, `check`
 * refuses such a gradient before anything changes: the update is exact or it
 * does not happen. The coordinator's gradient guard refuses far smaller
 * outliers earlier, naming the rank; this is the last line of defence.
 */
import { NumericError } from '../errors.js';

export interface AdamHyperparameters {
  /** Learning rate, > 0. */
  lr: number;
  /** First-moment decay, in [0, 1). */
  beta1: number;
  /** Second-moment decay, in [0, 1). */
  beta2: number;
  /** Added to √v̂ to avoid division by zero. */
  epsilon: number;
}

/** Largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** x^n for a non-negative integer n by binary exponentiation (deterministic rounding). */
export function powInt(x: number, n: number): number {
  let result = 1;
  let base = x;
  let e = n;
  while (e > 0) {
    if (e & 1) result *= base;
    base *= base;
    e = Math.floor(e / 2);
  }
  return result;
}

export class Adam {
  /** First moments, same layout as the weights. */
  readonly m: Float32Array;
  /** Second moments, same layout as the weights. */
  readonly v: Float32Array;
  /** Updates applied so far. */
  step = 0;

  constructor(
    readonly size: number,
    readonly hyper: Readonly<AdamHyperparameters>,
    /** Names the network in errors ("G", "D"). */
    readonly label = 'weights',
  ) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /**
   * Throws, changing nothing, if `apply` would refuse this gradient: wrong
   * length, NaN/±Inf, or an element whose second moment would overflow float32.
   */
  check(gradients: Float32Array): void {
    const n = this.size;
    if (gradients.length !== n) throw new RangeError(`Adam(${this.label}): expected ${n} gradient floats, got ${gradients.length}`);
    const { beta2 } = this.hyper;
    const a2 = 1 - beta2;
    const v = this.v;
    for (let i = 0; i < n; i++) {
      const g = gradients[i]!;
      // g − g is NaN for NaN and ±Inf, 0 otherwise: one cheap finiteness test.
      if (g - g !== 0) {
        throw new NumericError(`Adam(${this.label}): gradient element ${i} of ${n} is ${g} at update ${this.step + 1}; weights unchanged`);
      }
      if (beta2 * v[i]! + a2 * (g * g) > FLOAT32_MAX) {
        throw new NumericError(`Adam(${this.label}): gradient element ${i} of ${n} is ${g} at update ${this.step + 1}: its second moment would overflow float32 and freeze the weight; weights unchanged`);
      }
    }
  }

  /**
   * Applies one update to `weights` in place. Throws (changing nothing) if
   * `check` refuses the gradient or the weights have the wrong length.
   */
  apply(weights: Float32Array, gradients: Float32Array): void {
    const n = this.size;
    if (weights.length !== n) throw new RangeError(`Adam(${this.label}): expected ${n} weights, got ${weights.length}`);
    this.check(gradients);
    const { lr, beta1, beta2, epsilon } = this.hyper;
    const t = this.step + 1;
    const c1 = 1 - powInt(beta1, t);
    const c2 = 1 - powInt(beta2, t);
    const a1 = 1 - beta1;
    const a2 = 1 - beta2;
    const m = this.m;
    const v = this.v;
    for (let i = 0; i < n; i++) {
      const g = gradients[i]!;
      const mi = beta1 * m[i]! + a1 * g;
      const vi = beta2 * v[i]! + a2 * (g * g);
      m[i] = mi;
      v[i] = vi;
      weights[i] = weights[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + epsilon);
    }
    this.step = t;
  }

  /**
   * Counts an update that was discarded on every replica (the gradient guard's
   * skip-step policy) without changing weights or moments, so that G's and
   * D's optimizers stay at the same step count.
   */
  skip(): void {
    this.step += 1;
  }

  /** Copies of the moments and step, for checkpoints. */
  getState(): { step: number; m: Float32Array; v: Float32Array } {
    return { step: this.step, m: this.m.slice(), v: this.v.slice() };
  }

  setState(step: number, m: Float32Array, v: Float32Array): void {
    if (m.length !== this.size || v.length !== this.size) {
      throw new RangeError(`Adam(${this.label}): state has m ${m.length}, v ${v.length} floats; expected ${this.size}`);
    }
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`Adam(${this.label}): step ${step} is not a non-negative integer`);
    this.m.set(m);
    this.v.set(v);
    this.step = step;
  }
}
