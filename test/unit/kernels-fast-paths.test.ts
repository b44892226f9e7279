/**
 * distgan's wasm fast paths for stock kernels (BatchMatMul with transposes,
 * broadcastable Tile, LeakyRelu and its gradient, Sum and Mean over leading
 * axes) against the cpu backend,
 * and the stock fall-backs they keep for everything else. Tile and LeakyRelu
 * are exact rewrites, so they must match bit for bit; BatchMatMul only
 * changes the summation order.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { leakyReluGradConfig } from '../../src/shared/compute/kernels/leaky_relu.js';
import { pooledReduction } from '../../src/shared/compute/kernels/reduce.js';
import { registerWasmKernels, unregisterWasmKernels, wasmKernelsRegistered } from '../../src/shared/compute/kernels/register.js';
import { size, values } from '../helpers/values.js';

/** Test values with exact zeros sprinkled in (leakyReLU's kink). */
const valuesWithZeros = (n: number, seed: number): Float32Array => values(n, seed, { zeroEvery: 7 });


/** Runs `f` on a backend and returns its output's values and shape (tensors freed). */
async function on(backend: 'cpu' | 'wasm', f: () => tf.Tensor): Promise<{ values: Float32Array | Int32Array; shape: number[] }> {
  await tf.setBackend(backend);
  const out = tf.tidy(f);
  const result = { values: (await out.data()) as Float32Array | Int32Array, shape: out.shape };
  out.dispose();
  return result;
}

function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return err;
}

describe('distgan wasm fast paths match the cpu backend', () => {
  before(async () => {
    await initBackend('cpu', { log: () => {} });
    await initBackend('wasm', { log: () => {} });
    assert.ok(wasmKernelsRegistered());
  });

  const matmuls: Array<{ a: number[]; b: number[]; tA: boolean; tB: boolean }> = [
    { a: [3, 4], b: [4, 5], tA: false, tB: false },
    { a: [4, 3], b: [4, 5], tA: true, tB: false },
    { a: [3, 4], b: [5, 4], tA: false, tB: true },
    { a: [4, 3], b: [5, 4], tA: true, tB: true },
    { a: [2, 3, 4], b: [2, 5, 4], tA: false, tB: true },
    { a: [1, 4, 3], b: [2, 4, 5], tA: true, tB: false }, // broadcast batch
    { a: [64, 100], b: [64, 62], tA: true, tB: false }, // a dense layer's weight gradient, scaled down
  ];
  for (const m of matmuls) {
    it(`BatchMatMul a [${m.a}]${m.tA ? 'ᵀ' : ''} · b [${m.b}]${m.tB ? 'ᵀ' : ''}`, async () => {
      const f = (): tf.Tensor => tf.matMul(tf.tensor(valuesWithZeros(size(m.a), 1), m.a), tf.tensor(valuesWithZeros(size(m.b), 2), m.b), m.tA, m.tB);
      const ref = await on('cpu', f);
      const got = await on('wasm', f);
      assert.deepEqual(got.shape, ref.shape);
      assert.ok(maxRelErr(got.values, ref.values) <= 1e-5, `error ${maxRelErr(got.values, ref.values)}`);
    });
  }

  const tiles: Array<{ x: number[]; reps: number[]; dtype: 'float32' | 'int32'; note: string }> = [
    { x: [1, 1, 1, 5], reps: [2, 3, 4, 1], dtype: 'float32', note: 'batch-norm gradient shape (broadcast)' },
    { x: [1, 6], reps: [4, 1], dtype: 'float32', note: 'rank 2 (broadcast)' },
    { x: [3, 1, 2], reps: [1, 5, 1], dtype: 'float32', note: 'middle axis (broadcast)' },
    { x: [2, 3], reps: [2, 2], dtype: 'float32', note: 'true tiling (stock kernel)' },
    { x: [1, 3], reps: [2, 1], dtype: 'int32', note: 'int32 (stock kernel)' },
  ];
  for (const t of tiles) {
    it(`Tile [${t.x}] × [${t.reps}], ${t.dtype}: ${t.note}, bit-identical`, async () => {
      const vals = t.dtype === 'int32' ? Int32Array.from(valuesWithZeros(size(t.x), 3), (v) => Math.round(v * 100)) : valuesWithZeros(size(t.x), 3);
      const f = (): tf.Tensor => tf.tile(tf.tensor(vals, t.x, t.dtype), t.reps);
      const ref = await on('cpu', f);
      const got = await on('wasm', f);
      assert.deepEqual(got.shape, ref.shape);
      assert.deepEqual(Array.from(got.values), Array.from(ref.values));
    });
  }

  const reductions: Array<{ op: 'sum' | 'mean'; x: number[]; axis?: number | number[]; keepDims?: boolean; dtype?: 'int32'; note: string }> = [
    { op: 'sum', x: [4, 5, 6, 3], axis: [0, 1, 2], note: 'batch-norm/bias gradient (pooled)' },
    { op: 'mean', x: [4, 5, 6, 3], axis: [0, 1, 2], keepDims: true, note: 'moments (pooled)' },
    { op: 'sum', x: [7, 9], axis: 0, keepDims: true, note: 'dense bias gradient (pooled)' },
    { op: 'mean', x: [2, 3, 4], axis: [1, 0], note: 'unsorted leading axes (pooled)' },
    { op: 'sum', x: [4, 5, 6], axis: [1, 2], note: 'trailing axes (stock)' },
    { op: 'mean', x: [4, 5, 6], axis: [0, 2], note: 'non-contiguous axes (stock)' },
    { op: 'sum', x: [4, 5], note: 'every axis (stock)' },
    { op: 'sum', x: [1, 5], axis: 0, note: 'one row: nothing to pool (stock)' },
    { op: 'sum', x: [6, 4], axis: 0, dtype: 'int32', note: 'int32 (stock)' },
  ];
  for (const r of reductions) {
    it(`${r.op} [${r.x}] over ${JSON.stringify(r.axis ?? 'all')}${r.keepDims === true ? ', keepDims' : ''}${r.dtype === 'int32' ? ', int32' : ''}: ${r.note}`, async () => {
      const vals = r.dtype === 'int32' ? Int32Array.from(valuesWithZeros(size(r.x), 8), (v) => Math.round(v * 100)) : valuesWithZeros(size(r.x), 8);
      const f = (): tf.Tensor => {
        const x = tf.tensor(vals, r.x, r.dtype ?? 'float32');
        return r.op === 'sum' ? tf.sum(x, r.axis, r.keepDims) : tf.mean(x, r.axis, r.keepDims);
      };
      assert.equal(pooledReduction(r.x, r.axis, r.dtype ?? 'float32') !== undefined, r.note.endsWith('(pooled)'), 'path taken');
      const ref = await on('cpu', f);
      const got = await on('wasm', f);
      assert.deepEqual(got.shape, ref.shape);
      assert.ok(maxRelErr(got.values, ref.values) <= 1e-6, `error ${maxRelErr(got.values, ref.values)}`);
    });
  }

  for (const shape of [[2, 7, 7, 3], [5, 6], [9], []]) {
    it(`LeakyRelu forward on [${shape}] is bit-identical to the stock wasm kernel it replaces, and matches cpu`, async () => {
      const f = (): tf.Tensor => tf.leakyRelu(tf.tensor(valuesWithZeros(size(shape), 4), shape), 0.2);
      const got = await on('wasm', f);
      unregisterWasmKernels();
      let stock: Awaited<ReturnType<typeof on>>;
      try {
        stock = await on('wasm', f);
      } finally {
        registerWasmKernels();
      }
      assert.deepEqual(Array.from(got.values), Array.from(stock.values));
      // cpu multiplies by α in float64, wasm in float32: equal to rounding.
      const ref = await on('cpu', f);
      assert.ok(maxRelErr(got.values, ref.values) <= 1e-7, `error ${maxRelErr(got.values, ref.values)}`);
    });
  }

  it("LeakyRelu gradient is bit-identical to tfjs's where(x > 0, dy, α·dy)", async () => {
    await tf.setBackend('wasm');
    assert.equal(tf.getGradient('LeakyRelu'), leakyReluGradConfig, 'wasm start-up installs distgan gradient');
    const x = tf.tensor(valuesWithZeros(300, 5), [300]);
    const dy = tf.tensor(valuesWithZeros(300, 6), [300]);
    const ours = tf.grad((t: tf.Tensor) => tf.mul(tf.leakyRelu(t, 0.2), dy))(x);
    const reference = tf.where(tf.greater(x, 0), dy, tf.mul(dy, 0.2));
    assert.deepEqual(Array.from(await ours.data()), Array.from(await reference.data()));
    tf.dispose([x, dy, ours, reference]);
  });

  it('Identity shares the buffer: a clone outlives its original, and the buffer goes with the last reference', async () => {
    await tf.setBackend('wasm');
    const buffers = tf.backend().numDataIds();
    const x = tf.tensor(valuesWithZeros(1000, 9), [10, 100]);
    const y = tf.clone(x);
    assert.equal(tf.backend().numDataIds(), buffers + 1, 'no copy made');
    const expected = Array.from(await x.data());
    x.dispose();
    assert.deepEqual(Array.from(await y.data()), expected);
    y.dispose();
    assert.equal(tf.backend().numDataIds(), buffers);
    const s = tf.tensor(['a', 'b']);
    const sc = tf.clone(s);
    s.dispose();
    assert.deepEqual(await sc.data(), ['a', 'b']);
    sc.dispose();
  });

  it('leak no tensors or wasm buffers', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor(valuesWithZeros(12, 1), [4, 3]);
    const b = tf.tensor(valuesWithZeros(20, 2), [4, 5]);
    const x = tf.tensor(valuesWithZeros(5, 3), [1, 5]);
    const once = (): void => {
      tf.matMul(a, b, true, false);
      tf.tile(x, [3, 1]);
      tf.leakyRelu(b, 0.2);
      tf.sum(b, 0);
      tf.mean(b, 0, true);
      tf.grad((t: tf.Tensor) => tf.sum(tf.leakyRelu(t, 0.2)))(b);
    };
    tf.tidy(once);
    const tensors = tf.memory().numTensors;
    const buffers = tf.backend().numDataIds();
    for (let i = 0; i < 5; i++) tf.tidy(once);
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(tf.backend().numDataIds(), buffers);
    tf.dispose([a, b, x]);
  });
});
