/**
 * The reduction seam: how one phase's contributions from every rank become
 * the averaged update that every replica and the mirror apply.
 *
 * A contribution is a rank's gradient, already multiplied by its share of the
 * global batch (so the SUM over ranks is the full-batch mean), and its BN
 * statistics, raw (weighted here by the same shares). Every contribution has
 * passed the gradient guard before it gets here.
 *
 * The result must not depend on arrival order: replicas stay bit-identical
 * only if every run of the same step sums in the same order. The coordinator
 * picks one implementation by name (REDUCTIONS in ./index.ts) and depends on
 * nothing else; `star` (one process sums everything in rank order) is today's.
 */
export interface Contribution {
  grad: Float32Array;
  aux: Float32Array;
}

export interface ReductionShape {
  /** Floats in every rank's gradient. */
  gradLength: number;
  /** Each rank's share of the global batch, by rank (sums to 1). */
  shares: readonly number[];
}

export interface Reduction {
  readonly name: string;
  /**
   * The averaged update of one phase from the contributions of every rank,
   * indexed by rank. Throws NumericError if the sum is not finite (finite
   * parts can still overflow when the guard's norm limits are off).
   */
  reduce(parts: readonly Contribution[], shape: ReductionShape): Contribution;
}
