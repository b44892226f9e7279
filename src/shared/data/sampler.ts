/**
 * Which dataset samples each step trains on, as a pure function of
 * (seed, step, global batch, dataset size).
 *
 * Each epoch is a seeded permutation of the dataset; a step takes the next
 * `batch` entries and the remainder of an epoch that cannot fill a batch is
 * dropped (drop_last), so step s always reads
 * perm(epoch = ⌊s / stepsPerEpoch⌋)[(s mod stepsPerEpoch)·B …]. The sampler
 * position stored in a checkpoint is therefore derivable from the step, and a
 * resumed run reads exactly what an uninterrupted one would.
 */
import { permutation } from '../rng.js';
import { ConfigError } from '../errors.js';

export interface SamplerPosition {
  epoch: number;
  /** Index into the epoch's permutation of the next sample. */
  cursor: number;
}

export class EpochSampler {
  readonly stepsPerEpoch: number;
  private cachedEpoch = -1;
  private cachedPerm: Int32Array = new Int32Array(0);

  constructor(readonly count: number, readonly batch: number, readonly seed: number) {
    if (count < batch) {
      throw new ConfigError(`--batch-size ${batch} is larger than the dataset (${count} samples)`);
    }
    this.stepsPerEpoch = Math.floor(count / batch);
  }

  position(step: number): SamplerPosition {
    return { epoch: Math.floor(step / this.stepsPerEpoch), cursor: (step % this.stepsPerEpoch) * this.batch };
  }

  private perm(epoch: number): Int32Array {
    if (epoch !== this.cachedEpoch) {
      this.cachedPerm = permutation(this.count, this.seed, epoch);
      this.cachedEpoch = epoch;
    }
    return this.cachedPerm;
  }

  /** Dataset indices of the global batch of `step`. */
  indices(step: number): Int32Array {
    const { epoch, cursor } = this.position(step);
    return this.perm(epoch).slice(cursor, cursor + this.batch);
  }
}

/**
 * Splits a global batch of B over N ranks as evenly as possible: the first
 * B mod N ranks get one more sample. Returns [start, end) per rank.
 */
export function sliceBounds(batch: number, worldSize: number): Array<[number, number]> {
  const base = Math.floor(batch / worldSize);
  const extra = batch % worldSize;
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let r = 0; r < worldSize; r++) {
    const n = base + (r < extra ? 1 : 0);
    out.push([start, start + n]);
    start += n;
  }
  return out;
}

/** Global positions start..end-1 as an Int32Array. */
export function positionRange(start: number, end: number): Int32Array {
  const p = new Int32Array(end - start);
  for (let i = 0; i < p.length; i++) p[i] = start + i;
  return p;
}
