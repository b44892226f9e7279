/**
 * distgan's wasm Conv2DBackpropFilter / Conv2DBackpropInput against the stock
 * cpu kernels (the numerical reference), on the same inputs and attrs as
 * tfjs's conv2d / conv2dTranspose gradients pass them. Both backends are real;
 * shapes stay small because the cpu reference kernels are plain JS loops.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { unregisterWasmKernels, registerWasmKernels, wasmKernelsRegistered } from '../../src/shared/compute/kernels/register.js';
import {
  PER_PHASE_MIN_CHANNELS,
  conv2dBackpropInputConfig,
  conv2dBackpropInputConfigFor,
  type Strategy,
} from '../../src/shared/compute/kernels/conv2d_backprop_input.js';
import { tf } from '../../src/shared/compute/tf.js';
import { size, values } from '../helpers/values.js';

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];

interface Case {
  name: string;
  /** x shape in dataFormat's layout. */
  x: Shape4;
  /** [kh, kw, inC, outC] */
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
}

const CASES: Case[] = [
  { name: 'batch 1, 1 channel, odd 5×5, 3×3 s1 same', x: [1, 5, 5, 1], filter: [3, 3, 1, 1], strides: 1, pad: 'same' },
  { name: 'batch 2, odd 7×7, 5×5 s2 same (DCGAN-like)', x: [2, 7, 7, 3], filter: [5, 5, 3, 4], strides: 2, pad: 'same' },
  { name: 'batch 3, 8×8, 5×5 s2 valid', x: [3, 8, 8, 2], filter: [5, 5, 2, 3], strides: 2, pad: 'valid' },
  { name: 'batch 2, 9×6, 3×2 strides [2,1] valid', x: [2, 9, 6, 2], filter: [3, 2, 2, 5], strides: [2, 1], pad: 'valid' },
  { name: 'batch 1, 10×10, even 4×4 s2 same', x: [1, 10, 10, 4], filter: [4, 4, 4, 2], strides: 2, pad: 'same' },
  { name: 'batch 2, 1 channel, 11×11, 2×2 s3 valid (stride > kernel)', x: [2, 11, 11, 1], filter: [2, 2, 1, 3], strides: 3, pad: 'valid' },
  { name: 'batch 2, 6×7, 3×3 s1 numeric pad 1', x: [2, 6, 7, 3], filter: [3, 3, 3, 2], strides: 1, pad: 1 },
  { name: 'batch 1, 8×8, 3×3 s2 explicit pad', x: [1, 8, 8, 2], filter: [3, 3, 2, 2], strides: 2, pad: [[0, 0], [2, 0], [1, 2], [0, 0]] },
  { name: 'batch 2, 14×14×8 → 7×7×16, 5×5 s2 same', x: [2, 14, 14, 8], filter: [5, 5, 8, 16], strides: 2, pad: 'same' },
  // Padding wider than the kernel: some dy rows/cols only ever see padding.
  { name: 'batch 2, 6×6, 3×3 s2, explicit pad wider than the kernel', x: [2, 6, 6, 2], filter: [3, 3, 2, 3], strides: 2, pad: [[0, 0], [4, 5], [3, 0], [0, 0]] },
  // Every window lies in the padding: both gradients are exactly zero.
  { name: 'batch 1, 2×2, 1×1 s3 top/left pad 1 (no window reaches the input)', x: [1, 2, 2, 1], filter: [1, 1, 1, 2], strides: 3, pad: [[0, 0], [1, 0], [1, 0], [0, 0]] },
  { name: 'NCHW, batch 2, 3 channels, 7×7, 3×3 s2 same', x: [2, 3, 7, 7], filter: [3, 3, 3, 2], strides: 2, pad: 'same', dataFormat: 'NCHW' },
  // ≥ PER_PHASE_MIN_CHANNELS input channels: 'auto' runs one Conv2D per phase.
  { name: 'batch 2, 14×14×16 → 7×7×8, 5×5 s2 same (per-phase under auto)', x: [2, 14, 14, 16], filter: [5, 5, 16, 8], strides: 2, pad: 'same' },
  { name: 'batch 1, 11×10×16, 3×3 s3 valid (per-phase under auto)', x: [1, 11, 10, 16], filter: [3, 3, 16, 2], strides: 3, pad: 'valid' },
];



function relL2(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = (actual[i] as number) - (expected[i] as number);
    num += d * d;
    den += (expected[i] as number) ** 2;
  }
  // An all-zero reference (no window reaches the input) needs exact zeros.
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

function dyShape(c: Case): Shape4 {
  const format = c.dataFormat === 'NCHW' ? 'channelsFirst' : 'channelsLast';
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, undefined, false, format).outShape as Shape4;
}

/** Runs one kernel on `backend` with fresh tensors and returns its values and shape. */
async function runKernel(
  backend: 'cpu' | 'wasm',
  kernel: 'Conv2DBackpropInput' | 'Conv2DBackpropFilter',
  c: Case,
): Promise<{ values: Float32Array; shape: number[] }> {
  await tf.setBackend(backend);
  const dataFormat = c.dataFormat ?? 'NHWC';
  const common = { strides: c.strides, pad: c.pad, dataFormat, dimRoundingMode: undefined };
  const dy = tf.tensor(values(size(dyShape(c)), 7), dyShape(c));
  const out =
    kernel === 'Conv2DBackpropInput'
      ? (() => {
          const filter = tf.tensor(values(size(c.filter), 11), c.filter);
          const r = tf.engine().runKernel(kernel, { dy, filter }, { ...common, inputShape: c.x } as unknown as tf.NamedAttrMap);
          filter.dispose();
          return r as tf.Tensor;
        })()
      : (() => {
          const x = tf.tensor(values(size(c.x), 3), c.x);
          const r = tf.engine().runKernel(kernel, { x, dy }, { ...common, filterShape: c.filter } as unknown as tf.NamedAttrMap);
          x.dispose();
          return r as tf.Tensor;
        })();
  dy.dispose();
  const result = { values: (await out.data()) as Float32Array, shape: out.shape };
  out.dispose();
  return result;
}

const noLog = (): void => {};

describe('distgan wasm conv kernels match the cpu reference', () => {
  before(async () => {
    await initBackend('cpu', { log: noLog });
    await initBackend('wasm', { log: noLog });
    assert.ok(wasmKernelsRegistered(), 'initBackend("wasm") registers our kernels');
  });

  /** Runs `f` with the Conv2DBackpropInput kernel pinned to one strategy. */
  async function withStrategy<T>(strategy: Strategy, f: () => Promise<T>): Promise<T> {
    if (strategy === 'auto') return f();
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    tf.registerKernel(conv2dBackpropInputConfigFor(strategy));
    try {
      return await f();
    } finally {
      tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
      tf.registerKernel(conv2dBackpropInputConfig);
    }
  }

  const runs: Array<{ kernel: 'Conv2DBackpropInput' | 'Conv2DBackpropFilter'; strategy: Strategy }> = [
    { kernel: 'Conv2DBackpropInput', strategy: 'auto' },
    { kernel: 'Conv2DBackpropInput', strategy: 'per-phase' },
    { kernel: 'Conv2DBackpropInput', strategy: 'combined' },
    { kernel: 'Conv2DBackpropFilter', strategy: 'auto' },
  ];
  for (const { kernel, strategy } of runs) {
    for (const c of CASES) {
      it(`${kernel}${strategy === 'auto' ? '' : ` (${strategy})`}: ${c.name}`, async () => {
        const ref = await runKernel('cpu', kernel, c);
        const ours = await withStrategy(strategy, () => runKernel('wasm', kernel, c));
        assert.deepEqual(ours.shape, ref.shape);
        const err = relL2(ours.values, ref.values);
        assert.ok(err <= 1e-5, `relative L2 error ${err.toExponential(2)} > 1e-5`);
      });
    }
  }

  it('auto picks per-phase Conv2Ds from PER_PHASE_MIN_CHANNELS input channels up', () => {
    // Both sides of the threshold are among CASES, so both code paths run under 'auto' too.
    const channels = CASES.map((c) => (c.dataFormat === 'NCHW' ? c.x[1] : c.x[3]));
    assert.ok(channels.some((ch) => ch >= PER_PHASE_MIN_CHANNELS) && channels.some((ch) => ch < PER_PHASE_MIN_CHANNELS));
  });

  it('leaks neither tensors nor wasm buffers over repeated calls', async () => {
    await tf.setBackend('wasm');
    const c = CASES[1] as Case;
    const dy = tf.tensor(values(size(dyShape(c)), 1), dyShape(c));
    const filter = tf.tensor(values(size(c.filter), 2), c.filter);
    const x = tf.tensor(values(size(c.x), 3), c.x);
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
    const once = (): void => {
      tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { ...attrs, inputShape: c.x } as unknown as tf.NamedAttrMap);
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter } as unknown as tf.NamedAttrMap);
    };
    const backend = tf.backend();
    tf.tidy(once); // warm-up
    const tensorsBefore = tf.memory().numTensors;
    const buffersBefore = backend.numDataIds();
    for (let i = 0; i < 5; i++) tf.tidy(once);
    assert.equal(tf.memory().numTensors, tensorsBefore, 'live tensors grew');
    assert.equal(backend.numDataIds(), buffersBefore, 'wasm data buffers grew');
    // A call's output is a fresh tensor the engine owns: exactly one more of each.
    const out = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: c.filter } as unknown as tf.NamedAttrMap) as tf.Tensor;
    assert.equal(tf.memory().numTensors, tensorsBefore + 1);
    assert.equal(backend.numDataIds(), buffersBefore + 1);
    out.dispose();
    tf.dispose([dy, filter, x]);
    assert.equal(backend.numDataIds(), buffersBefore - 3);
  });

  it('rejects what it cannot compute with a clear error (int32 input)', async () => {
    await tf.setBackend('wasm');
    const dy = tf.zeros([1, 3, 3, 2], 'int32');
    const filter = tf.zeros([3, 3, 1, 2]);
    const buffersBefore = tf.backend().numDataIds();
    assert.throws(
      () =>
        tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, {
          strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [1, 3, 3, 1],
        } as unknown as tf.NamedAttrMap),
      /Conv2DBackpropInput \(wasm\): float32 only/,
    );
    assert.equal(tf.backend().numDataIds(), buffersBefore);
    tf.dispose([dy, filter]);
  });

  it('unregisterWasmKernels restores the stock kernels, registerWasmKernels puts ours back', async () => {
    await tf.setBackend('wasm');
    unregisterWasmKernels();
    try {
      assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), undefined);
      const stock = tf.getKernel('Conv2DBackpropInput', 'wasm');
      assert.ok(stock !== undefined && !wasmKernelsRegistered());
      // The restored stock kernel still works (its setup ran at backend init).
      const c = CASES[1] as Case;
      const ref = await runKernel('cpu', 'Conv2DBackpropInput', c);
      const got = await runKernel('wasm', 'Conv2DBackpropInput', c);
      assert.ok(relL2(got.values, ref.values) <= 1e-5);
    } finally {
      await tf.setBackend('wasm');
      registerWasmKernels();
    }
    assert.ok(wasmKernelsRegistered());
  });

  it('a tiny conv net (convT s2 + conv s2) gets the same gradients on wasm as on cpu', async () => {
    // G-like transposed conv 4×4×6 → 8×8×3, then a D-like conv 8×8×3 → 4×4×5;
    // every variable's gradient crosses both of our kernels.
    const shapes = { z: [2, 4, 4, 6], g: [5, 5, 3, 6], d: [5, 5, 3, 5], target: [2, 4, 4, 5] } as const;
    const grads = async (backend: 'cpu' | 'wasm'): Promise<{ loss: number; grads: Record<string, Float32Array> }> => {
      await tf.setBackend(backend);
      const vars = {
        z: tf.variable(tf.tensor(values(size(shapes.z), 21), [...shapes.z]), true, `z_${backend}`),
        g: tf.variable(tf.tensor(values(size(shapes.g), 22), [...shapes.g]), true, `g_${backend}`),
        d: tf.variable(tf.tensor(values(size(shapes.d), 23), [...shapes.d]), true, `d_${backend}`),
      };
      const target = tf.tensor(values(size(shapes.target), 24), [...shapes.target]);
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => {
        const h = tf.tanh(tf.conv2dTranspose(vars.z as tf.Tensor4D, vars.g as tf.Tensor4D, [2, 8, 8, 3], 2, 'same'));
        const y = tf.conv2d(h, vars.d as tf.Tensor4D, 2, 'same');
        return tf.mean(tf.square(tf.sub(y, target))) as tf.Scalar;
      }, [vars.z, vars.g, vars.d]);
      const out: Record<string, Float32Array> = {};
      for (const [name, v] of Object.entries(vars)) out[name] = (await (grads[v.name] as tf.Tensor).data()) as Float32Array;
      const loss = (await value.data())[0] as number;
      tf.dispose([value, ...Object.values(grads)]);
      assert.equal(tf.memory().numTensors, before, `${backend}: variableGrads leaked tensors`);
      tf.dispose([target, ...Object.values(vars)]);
      return { loss, grads: out };
    };
    const ref = await grads('cpu');
    const ours = await grads('wasm');
    assert.ok(Math.abs(ours.loss - ref.loss) <= 1e-5 * Math.abs(ref.loss), `loss ${ours.loss} vs ${ref.loss}`);
    for (const name of Object.keys(ref.grads)) {
      const err = relL2(ours.grads[name] as Float32Array, ref.grads[name] as Float32Array);
      assert.ok(err <= 1e-5, `gradient of ${name}: relative L2 error ${err.toExponential(2)} > 1e-5`);
    }
  });
});
