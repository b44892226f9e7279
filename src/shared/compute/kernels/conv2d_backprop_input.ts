/**
 * Conv2DBackpropInput for the wasm backend, built only from the backend's own
 * kernels (Conv2D, PadV2, Reshape, Reverse, Transpose, Slice, Fill).
 *
 * Why: this one kernel is both the generator's transposed convolution (forward)
 * and the discriminator's input gradient, and the stock wasm version is a plain
 * loop that runs ~8× slower per multiply-add than wasm's XNNPACK Conv2D.
 *
 * How (polyphase): a transposed convolution with stride s writes output row
 * h = q·s + r − padTop from dy rows q − m through filter row m·s + r. For each
 * phase r that is a stride-1 correlation of dy with the sub-kernel of filter
 * rows r, r+s, r+2s, … flipped. All s_h·s_w phases share one padded sub-kernel
 * size M = ceil(K/s) (missing taps are zeros), so they run as ONE stride-1
 * Conv2D whose output channels are the phases stacked, [phaseRow, phaseCol,
 * inChannel]; the phases are then interleaved back (reshape + transpose) and
 * cropped. For s = 1 this is the textbook "convolve with the flipped,
 * transposed filter". One combined Conv2D beat s² separate exact-size ones
 * when measured side by side (DCGAN-MNIST shapes, batch 64, 2 busy cores:
 * 227 vs 295 ms for 128→64 channels, 16 vs 100 ms for 64→1 channel): XNNPACK's
 * GEMMs gain more from the extra output channels than the zero taps cost.
 * alignShift() below picks where the blocks start so none is wasted.
 *
 * Geometry uses only the top/left padding and the real shape of dy, so the
 * result is the exact adjoint of the forward convolution that produced dy
 * (bottom/right padding only decides how many dy rows exist). NCHW inputs are
 * transposed to NHWC and back. Anything else that does not fit (non-float32,
 * inconsistent shapes) throws; nothing is silently approximated.
 */
import { tf } from '../tf.js';

import { StockKernels, shape4 as shape4Of, type Shape4, type TensorInfo } from './stock-kernels.js';

const shape4 = (shape: readonly number[], what: string): Shape4 => shape4Of(shape, what, KERNEL_NAME);


const KERNEL_NAME = 'Conv2DBackpropInput';

/**
 * Shifting the filter down by d taps (zeros in front) while adding d to the
 * padding leaves a transposed conv unchanged. With d = (−pad) mod s the blocks
 * of s output rows start at output row 0, which can save one block row (for
 * 'same' 5×5 s2 to 14 rows: 7 blocks instead of 8, 23% fewer multiply-adds)
 * but may add a tap; this returns whichever d costs fewer block-rows × taps.
 * @param k filter size, s stride, pad leading padding, len output size (all in rows)
 */
function alignShift(k: number, s: number, pad: number, len: number): { d: number; taps: number } {
  const cost = (d: number): number =>
    Math.ceil((k + d) / s) * (Math.floor((pad + d + len - 1) / s) - Math.floor((pad + d) / s) + 1);
  const aligned = (s - (pad % s)) % s;
  const d = cost(aligned) < cost(0) ? aligned : 0;
  return { d, taps: Math.ceil((k + d) / s) };
}

/**
 * dx for NHWC tensors.
 * @param inShape dx shape [batch, height, width, inChannels]
 * @param strides [strideHeight, strideWidth], each ≥ 1
 * @param padTopIn rows of implicit zeros above the input in the forward conv
 * @param padLeftIn columns of implicit zeros left of the input in the forward conv
 */
function backpropInputNHWC(
  k: StockKernels,
  dy: TensorInfo,
  filter: TensorInfo,
  inShape: Shape4,
  strides: [number, number],
  padTopIn: number,
  padLeftIn: number,
): TensorInfo {
  const [n, h, w, inC] = inShape;
  const [kh, kw, , outC] = shape4(filter.shape, 'filter');
  const [, dyH, dyW] = shape4(dy.shape, 'dy');
  const [sh, sw] = strides;
  const ah = alignShift(kh, sh, padTopIn, h);
  const aw = alignShift(kw, sw, padLeftIn, w);
  const mh = ah.taps;
  const mw = aw.taps;
  const padTop = padTopIn + ah.d;
  const padLeft = padLeftIn + aw.d;
  const phases = sh * sw;

  // Output rows/cols (shifted by the padding) live in blocks q = q0 … q1 of s.
  const q0h = Math.floor(padTop / sh);
  const q1h = Math.floor((padTop + h - 1) / sh);
  const q0w = Math.floor(padLeft / sw);
  const q1w = Math.floor((padLeft + w - 1) / sw);
  // Block q needs dy rows q − (M − 1) … q; keep the ones that exist.
  const rowFrom = Math.max(0, q0h - (mh - 1));
  const rowTo = Math.min(dyH - 1, q1h);
  const colFrom = Math.max(0, q0w - (mw - 1));
  const colTo = Math.min(dyW - 1, q1w);
  if (rowTo < rowFrom || colTo < colFrom) {
    // No dy element reaches the input (all of it fell into the padding).
    return k.run('Fill', {}, { shape: [n, h, w, inC], value: 0, dtype: 'float32' });
  }

  // Combined kernel [M_h, M_w, outC, s_h·s_w·inC] (filter shifted by d, zero-extended to M·s):
  //   F[u, v, o, (rh, rw, c)] = filter[(M_h−1−u)·s_h + rh − d_h, (M_w−1−v)·s_w + rw − d_w, c, o].
  let f = filter;
  if (mh * sh !== kh || mw * sw !== kw) {
    f = k.run('PadV2', { x: f }, { paddings: [[ah.d, mh * sh - kh - ah.d], [aw.d, mw * sw - kw - aw.d], [0, 0], [0, 0]], constantValue: 0 });
  }
  f = k.run('Reshape', { x: f }, { shape: [mh, sh, mw, sw, inC, outC] });
  f = k.run('Reverse', { x: f }, { dims: [0, 2] });
  f = k.run('Transpose', { x: f }, { perm: [0, 2, 5, 1, 3, 4] });
  f = k.run('Reshape', { x: f }, { shape: [mh, mw, outC, phases * inC] });

  let src = dy;
  if (rowFrom > 0 || colFrom > 0 || rowTo < dyH - 1 || colTo < dyW - 1) {
    src = k.run('Slice', { x: src }, { begin: [0, rowFrom, colFrom, 0], size: [n, rowTo - rowFrom + 1, colTo - colFrom + 1, outC] });
  }
  const qh = q1h - q0h + 1;
  const qw = q1w - q0w + 1;
  const padBefore = (q: number, m: number, from: number): number => from - (q - (m - 1));
  const pad = [
    [0, 0],
    [padBefore(q0h, mh, rowFrom), q1h - rowTo],
    [padBefore(q0w, mw, colFrom), q1w - colTo],
    [0, 0],
  ];
  let z = k.run('Conv2D', { x: src, filter: f }, {
    strides: [1, 1],
    pad,
    dataFormat: 'NHWC',
    dilations: [1, 1],
  });
  const [, zh, zw, zc] = shape4(z.shape, 'Conv2D output');
  if (zh !== qh || zw !== qw || zc !== phases * inC) {
    throw new Error(`${KERNEL_NAME} (wasm): internal shape error, Conv2D gave [${z.shape.join(', ')}], expected [${n}, ${qh}, ${qw}, ${phases * inC}]`);
  }

  if (phases > 1) {
    // [n·Q_h, Q_w, s_h, s_w·inC] → [n·Q_h, s_h, Q_w, s_w·inC] is the interleave.
    z = k.run('Reshape', { x: z }, { shape: [n * qh, qw, sh, sw * inC] });
    z = k.run('Transpose', { x: z }, { perm: [0, 2, 1, 3] });
    z = k.run('Reshape', { x: z }, { shape: [n, qh * sh, qw * sw, inC] });
  }
  const cropTop = padTop - q0h * sh;
  const cropLeft = padLeft - q0w * sw;
  if (cropTop !== 0 || cropLeft !== 0 || qh * sh !== h || qw * sw !== w) {
    z = k.run('Slice', { x: z }, { begin: [0, cropTop, cropLeft, 0], size: [n, h, w, inC] });
  }
  return z;
}

/** The kernelFunc registered for 'Conv2DBackpropInput' on wasm. */
function conv2dBackpropInput(params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { inputs, attrs } = params;
  const backend = params.backend as tf.KernelBackend;
  const dy = inputs['dy'];
  const filter = inputs['filter'];
  if (dy === undefined || filter === undefined) throw new Error(`${KERNEL_NAME} (wasm): inputs dy and filter are required`);
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32') {
    throw new Error(`${KERNEL_NAME} (wasm): float32 only, got dy ${dy.dtype} and filter ${filter.dtype}`);
  }
  const a = (attrs ?? {}) as unknown as tf.Conv2DBackpropInputAttrs;
  const inputShape = shape4(a.inputShape, 'inputShape');
  const dataFormat = tf.backend_util.convertConv2DDataFormat(a.dataFormat ?? 'NHWC');
  const filterShape = shape4(filter.shape, 'filter');
  const info = tf.backend_util.computeConv2DInfo(
    inputShape, filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, dataFormat);
  const nhwcIn: Shape4 = [info.batchSize, info.inHeight, info.inWidth, info.inChannels];
  const dyShape = shape4(dy.shape, 'dy');
  const dyBatch = dyShape[0];
  const dyC = dataFormat === 'channelsLast' ? dyShape[3] : dyShape[1];
  if (dyBatch !== info.batchSize || dyC !== filterShape[3] || info.inChannels !== filterShape[2]) {
    throw new Error(
      `${KERNEL_NAME} (wasm): inconsistent shapes: dy [${dy.shape.join(', ')}], filter [${filterShape.join(', ')}], ` +
        `inputShape [${inputShape.join(', ')}] (${a.dataFormat ?? 'NHWC'})`);
  }
  if (info.strideHeight < 1 || info.strideWidth < 1) {
    throw new Error(`${KERNEL_NAME} (wasm): strides must be ≥ 1, got [${info.strideHeight}, ${info.strideWidth}]`);
  }

  const k = new StockKernels(backend, KERNEL_NAME);
  let result: TensorInfo | undefined;
  try {
    const strides: [number, number] = [info.strideHeight, info.strideWidth];
    if (dataFormat === 'channelsLast') {
      result = backpropInputNHWC(k, dy, filter, nhwcIn, strides, info.padInfo.top, info.padInfo.left);
    } else {
      // wasm kernels are NHWC-only: go there and back.
      const dyNhwc = k.run('Transpose', { x: dy }, { perm: [0, 2, 3, 1] });
      const dx = backpropInputNHWC(k, dyNhwc, filter, nhwcIn, strides, info.padInfo.top, info.padInfo.left);
      result = k.run('Transpose', { x: dx }, { perm: [0, 3, 1, 2] });
    }
    return result;
  } finally {
    k.release(result);
  }
}

/** Registered by register.ts in place of the stock wasm kernel. */
export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: KERNEL_NAME,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropInput as tf.KernelFunc,
};
