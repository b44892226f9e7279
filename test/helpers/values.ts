/**
 * Deterministic test data: no Math.random, so a failure reproduces exactly.
 */

/**
 * `size` values in [-1, 1) from a 32-bit LCG seeded with `seed`. With
 * `zeroEvery` = k, every element at index ≡ 3 (mod k) is exactly 0 (for
 * kinks such as leakyReLU's at 0).
 */
export function values(size: number, seed: number, opts: { zeroEvery?: number } = {}): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = opts.zeroEvery !== undefined && i % opts.zeroEvery === 3 ? 0 : s / 2 ** 31 - 1;
  }
  return out;
}

/** Number of elements of a shape. */
export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
