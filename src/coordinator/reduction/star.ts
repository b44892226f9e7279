/**
 * `star`: the coordinator receives every rank's contribution and sums them
 * on its own thread, in rank order, so the float result never depends on
 * arrival order. Gradients are summed as they come (pre-scaled by share); BN
 * statistics are weighted by share here.
 */
import { NumericError, ProtocolError } from '../../shared/errors.js';
import { EMPTY_F32 } from '../../shared/protocol.js';
import type { Contribution, Reduction, ReductionShape } from './api.js';

/** Sums per-rank arrays in rank order; `weights` (by rank) scale each part when given. */
export function sumInRankOrder(parts: readonly Float32Array[], length: number, weights?: readonly number[]): Float32Array {
  const out = new Float32Array(length);
  parts.forEach((p, r) => {
    if (p.length !== length) throw new ProtocolError(`rank ${r} sent ${p.length} floats, expected ${length}`);
    const w = weights?.[r] ?? 1;
    if (w === 1) for (let i = 0; i < length; i++) out[i]! += p[i]!;
    else for (let i = 0; i < length; i++) out[i]! += w * p[i]!;
  });
  return out;
}

function assertFinite(name: string, arr: Float32Array): void {
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i]!;
    if (x - x !== 0) throw new NumericError(`the averaged ${name} overflowed at element ${i} (${x}) although every rank's part was finite; set --grad-norm-max to refuse such parts`);
  }
}

export const star: Reduction = {
  name: 'star',
  reduce(parts: readonly Contribution[], shape: ReductionShape): Contribution {
    const auxLength = parts[0]?.aux.length ?? 0;
    const grad = sumInRankOrder(parts.map((p) => p.grad), shape.gradLength);
    const aux = auxLength ? sumInRankOrder(parts.map((p) => p.aux), auxLength, shape.shares) : EMPTY_F32;
    assertFinite('gradient', grad);
    assertFinite('BN statistics', aux);
    return { grad, aux };
  },
};
