/**
 * Deterministic randomness that does not depend on how a batch is split.
 *
 * Every random number distgan draws for a sample is a pure function of
 * (seed, stream, step, global sample index, element). A worker that owns
 * samples 32..63 of a step therefore draws exactly the numbers that a single
 * process owning 0..63 draws for those samples; that is what makes N workers
 * equal one big-batch process. Counter-based generation (a 64-bit mix of the
 * coordinates, SplitMix64-style) needs no state to checkpoint beyond the seed
 * and the step.
 */

/** Distinct streams, so that D-phase noise never equals G-phase noise. */
export const enum Stream {
  DPhaseLatent = 1,
  GPhaseLatent = 2,
  InstanceNoiseReal = 3,
  InstanceNoiseFake = 4,
  Permutation = 5,
  Init = 6,
  Synthetic = 7,
  FixedSampleLatent = 8,
  Augment = 9,
}

const MASK64 = (1n << 64n) - 1n;

function splitmix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & MASK64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return x ^ (x >> 31n);
}

/**
 * A fast 32-bit generator (mulberry32) seeded from a 64-bit hash of the
 * coordinates. BigInt is used only once per row, not per number.
 */
export class Rng {
  private state: number;

  constructor(seed: number, ...coords: number[]) {
    let h = splitmix64(BigInt.asUintN(64, BigInt(Math.trunc(seed))));
    for (const c of coords) h = splitmix64(h ^ BigInt.asUintN(64, BigInt(Math.trunc(c))));
    this.state = Number(h & 0xffffffffn) | 0;
  }

  /** Uniform in [0, 1), 32 bits of entropy. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal via Box–Muller; the second value is discarded so draws stay aligned per element. */
  normal(): number {
    let u = this.next();
    if (u < 1e-12) u = 1e-12;
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * Fills `out` with `rows` rows of `dim` standard normals, row r drawn from
 * Rng(seed, stream, step, firstIndex + r). The result for a given global
 * index is the same whatever `firstIndex` and `rows` the caller picked.
 */
export function normalRows(
  out: Float32Array,
  seed: number,
  stream: Stream,
  step: number,
  globalIndices: ArrayLike<number>,
  dim: number,
): Float32Array {
  const rows = globalIndices.length;
  if (out.length < rows * dim) throw new RangeError(`normalRows: out has ${out.length} floats, needs ${rows * dim}`);
  for (let r = 0; r < rows; r++) {
    const rng = new Rng(seed, stream, step, globalIndices[r]!);
    const base = r * dim;
    for (let j = 0; j < dim; j++) out[base + j] = rng.normal();
  }
  return out;
}

/** A seeded Fisher–Yates permutation of 0..n-1 for one epoch. */
export function permutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rng = new Rng(seed, Stream.Permutation, epoch);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}
