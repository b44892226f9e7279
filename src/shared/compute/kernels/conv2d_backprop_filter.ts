/**
 * Conv2DBackpropFilter for the wasm backend, which ships without one
 * ("Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'"), built
 * only from the backend's own kernels (Conv2D, Transpose, Slice, Fill).
 *
 * How: the filter gradient
 *   dW[a, b, c, o] = Σ_{n,i,j} x[n, i·s_h + a − padTop, j·s_w + b − padLeft, c] · dy[n, i, j, o]
 * is itself a convolution once batch and channels trade places: take the input
 * as [c, H, W, n] (batch = input channel, channels = batch) and dy as a filter
 * [i, j, n, o]; a stride-1 Conv2D dilated by the forward stride, padded by the
 * forward top/left padding, gives [c, a, b, o], i.e. dW transposed.
 *
 * Geometry uses only the top/left padding and the real shape of dy (the bottom
 * padding is derived so that the output is exactly kernel-sized; input rows no
 * window reaches are sliced off), so the result is the exact gradient of the
 * forward convolution that produced dy. NCHW inputs are transposed to NHWC
 * first. Non-float32 or inconsistent shapes throw.
 */
import { tf } from '../tf.js';

import {
  StockKernels,
  checkedConv2DInfo,
  float32Inputs,
  shape4 as shape4Of,
  withStockKernels,
  type Shape4,
  type TensorInfo,
} from './stock-kernels.js';

const shape4 = (shape: readonly number[], what: string): Shape4 => shape4Of(shape, what, KERNEL_NAME);

const KERNEL_NAME = 'Conv2DBackpropFilter';


/**
 * dW for NHWC x and dy.
 * @param filterShape [kernelHeight, kernelWidth, inChannels, outChannels]
 * @param strides [strideHeight, strideWidth] of the forward conv, each ≥ 1
 * @param padTop rows of implicit zeros above the input in the forward conv
 * @param padLeft columns of implicit zeros left of the input in the forward conv
 */
function backpropFilterNHWC(
  k: StockKernels,
  x: TensorInfo,
  dy: TensorInfo,
  filterShape: Shape4,
  strides: [number, number],
  padTop: number,
  padLeft: number,
): TensorInfo {
  const [n, h, w, inC] = shape4(x.shape, 'x');
  const [, dyH, dyW, outC] = shape4(dy.shape, 'dy');
  const [kh, kw] = filterShape;
  const [sh, sw] = strides;

  // Padding after the input that makes the dilated conv's output exactly k:
  // H + padTop + padBottom − ((dyH − 1)·s + 1) + 1 = k. Negative means the
  // last input rows are never read by the forward conv: drop them instead.
  const padBottom = kh + (dyH - 1) * sh - h - padTop;
  const padRight = kw + (dyW - 1) * sw - w - padLeft;
  const rows = Math.min(h, h + padBottom);
  const cols = Math.min(w, w + padRight);
  if (rows <= 0 || cols <= 0) {
    // Every window of the forward conv lay in the padding: the gradient is 0.
    return k.run('Fill', {}, { shape: [kh, kw, inC, outC], value: 0, dtype: 'float32' });
  }
  let src = x;
  if (rows !== h || cols !== w) {
    src = k.run('Slice', { x: src }, { begin: [0, 0, 0, 0], size: [n, rows, cols, inC] });
  }
  const xT = k.run('Transpose', { x: src }, { perm: [3, 1, 2, 0] }); // [inC, rows, cols, n]
  const dyT = k.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }); // [dyH, dyW, n, outC]
  const g = k.run('Conv2D', { x: xT, filter: dyT }, {
    strides: [1, 1],
    pad: [[0, 0], [padTop, Math.max(0, padBottom)], [padLeft, Math.max(0, padRight)], [0, 0]],
    dataFormat: 'NHWC',
    dilations: [sh, sw],
  }); // [inC, kh, kw, outC]
  const [gc, gh, gw, go] = shape4(g.shape, 'Conv2D output');
  if (gc !== inC || gh !== kh || gw !== kw || go !== outC) {
    throw new Error(`${KERNEL_NAME} (wasm): internal shape error, Conv2D gave [${g.shape.join(', ')}], expected [${inC}, ${kh}, ${kw}, ${outC}]`);
  }
  return k.run('Transpose', { x: g }, { perm: [1, 2, 0, 3] });
}

/** The kernelFunc registered for 'Conv2DBackpropFilter' on wasm. */
function conv2dBackpropFilter(params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { x, dy } = float32Inputs(KERNEL_NAME, params.inputs, ['x', 'dy']);
  const a = (params.attrs ?? {}) as unknown as tf.Conv2DBackpropFilterAttrs;
  const filterShape = shape4(a.filterShape, 'filterShape');
  const { info, channelsLast } = checkedConv2DInfo(KERNEL_NAME, a, shape4(x.shape, 'x'), filterShape, shape4(dy.shape, 'dy'));
  return withStockKernels(params.backend as tf.KernelBackend, KERNEL_NAME, (k) => {
    // wasm kernels are NHWC-only; the filter layout is the same for both formats.
    const xs = channelsLast ? x : k.run('Transpose', { x }, { perm: [0, 2, 3, 1] });
    const dys = channelsLast ? dy : k.run('Transpose', { x: dy }, { perm: [0, 2, 3, 1] });
    return backpropFilterNHWC(k, xs, dys, filterShape, [info.strideHeight, info.strideWidth], info.padInfo.top, info.padInfo.left);
  });
}

/** Registered by register.ts (the stock wasm backend has no such kernel). */
export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: KERNEL_NAME,
  backendName: 'wasm',
  kernelFunc: conv2dBackpropFilter as tf.KernelFunc,
};
