/**
 * Conv2DBackpropInput for the wasm backend, built only from the backend's own
 * kernels (Conv2D, PadV2, Reshape, Transpose, BatchMatMul, Slice, Concat, Fill).
 *
 * Why: this one kernel is both the generator's transposed convolution (forward)
 * and the discriminator's input gradient, and the stock wasm version is a plain
 * loop that runs ~8× slower per multiply-add than wasm's XNNPACK Conv2D.
 *
 * How (polyphase): a transposed convolution with stride s writes output row
 * h = q·s + r − padTop from dy rows q − m through filter row m·s + r. For each
 * phase r that is a stride-1 correlation of dy with the sub-kernel of filter
 * rows r, r+s, r+2s, … flipped, which has exactly ceil((K − r)/s) taps. Each
 * of the s_h·s_w phases runs as its own stride-1 Conv2D with its exact
 * sub-kernel; the results are stacked on the channel axis and interleaved back
 * (reshape + transpose), then cropped. For s = 1 this is the textbook
 * "convolve with the flipped, transposed filter".
 *
 * Exact sub-kernels against one Conv2D over a zero-padded common sub-kernel
 * (what this kernel did first): DCGAN-MNIST's 5×5 s2 128→64 channels, batch
 * 64, measured side by side on 2 cores, 62 ms for four exact Conv2Ds against
 * 95 ms for one over 3×3 sub-kernels, which does 36/25 of the multiply-adds.
 *
 * Output rows are handled in blocks of s: row h = b·s + e. Position e in the
 * block always comes from phase r = (e + padTop) mod s and dy block offset
 * δ = floor((e + padTop)/s), so every phase's Conv2D produces exactly
 * ceil(H/s) rows and nothing is wasted but the final crop of < s rows.
 *
 * Geometry uses only the top/left padding and the real shape of dy, so the
 * result is the exact adjoint of the forward convolution that produced dy
 * (bottom/right padding only decides how many dy rows exist). NCHW inputs are
 * transposed to NHWC and back. Anything else that does not fit (non-float32,
 * inconsistent shapes) throws; nothing is silently approximated.
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

const KERNEL_NAME = 'Conv2DBackpropInput';

/** dy rows [from, to] a Conv2D reads, and the implicit zeros around them (to < from: none). */
interface AxisWindow {
  from: number;
  to: number;
  padBefore: number;
  padAfter: number;
}

/** One output position e within a block of s rows (or columns), along one axis. */
interface AxisPhase {
  /** Filter phase r = (e + pad) mod s: its taps are filter rows r, r+s, … */
  r: number;
  /** Taps of phase r, ceil((K − r)/s); 0 when the stride skips it (r ≥ K). */
  taps: number;
  /** Block b of this position reads dy rows b + δ − (taps − 1) … b + δ. */
  delta: number;
  window: AxisWindow;
}

interface Axis {
  /** ceil(len/s): rows every phase's Conv2D produces. */
  blocks: number;
  phases: AxisPhase[];
}

/** The window for dy rows first … last (either may fall outside dy). */
function windowOf(first: number, last: number, dyLen: number): AxisWindow {
  const from = Math.max(0, first);
  const to = Math.min(dyLen - 1, last);
  return { from, to, padBefore: from - first, padAfter: last - to };
}

/**
 * The phases of one axis.
 * @param k filter size, s stride, pad leading padding of the forward conv,
 *   len input (dx) size, dyLen dy size (all in rows)
 */
function axisPhases(k: number, s: number, pad: number, len: number, dyLen: number): Axis {
  const blocks = Math.ceil(len / s);
  const phases: AxisPhase[] = [];
  for (let e = 0; e < s; e++) {
    const r = (e + pad) % s;
    const delta = Math.floor((e + pad) / s);
    const taps = r < k ? Math.ceil((k - r) / s) : 0;
    phases.push({ r, taps, delta, window: windowOf(delta - (taps - 1), blocks - 1 + delta, dyLen) });
  }
  return { blocks, phases };
}

/**
 * One window that serves every phase of an axis at once: `span` taps ending
 * at dy row b + max δ; phase e's taps sit `before` taps from its start and
 * `after` from its end (undefined: the phase has no taps).
 */
function sharedAxis(axis: Axis, dyLen: number): { span: number; window: AxisWindow; place: Array<{ before: number; after: number } | undefined> } | undefined {
  const live = axis.phases.filter((p) => p.taps > 0);
  if (live.length === 0) return undefined;
  const dmax = Math.max(...live.map((p) => p.delta));
  const span = Math.max(...live.map((p) => p.taps + dmax - p.delta));
  return {
    span,
    window: windowOf(dmax - (span - 1), axis.blocks - 1 + dmax, dyLen),
    place: axis.phases.map((p) => (p.taps === 0 ? undefined : { before: span - p.taps - (dmax - p.delta), after: dmax - p.delta })),
  };
}

/**
 * The filter [K_h, K_w, inC, outC] rearranged for the phases:
 *   F[u, v, o, (r_h, r_w, c)] = filter[(M_h−1−u)·s_h + r_h, (M_w−1−v)·s_w + r_w, c, o]
 * with M = ceil(K/s) and zeros past the filter's edge; phase (r_h, r_w) uses
 * the trailing taps × taps corner of its channel block.
 * Built from rank ≤ 4 transposes and a matmul, not Reverse and a rank-6
 * Transpose: stock wasm runs those through generic index loops (~50 ms for
 * the 5×5×64×128 DCGAN filter, more than the rest of the kernel's overhead).
 */
function phaseFilter(k: StockKernels, filter: TensorInfo, strides: [number, number]): TensorInfo {
  const [kh, kw, inC, outC] = shape4(filter.shape, 'filter');
  const [sh, sw] = strides;
  const mh = Math.ceil(kh / sh);
  const mw = Math.ceil(kw / sw);
  const phases = sh * sw;
  let f = filter;
  if (mh * sh !== kh || mw * sw !== kw) {
    f = k.run('PadV2', { x: f }, { paddings: [[0, mh * sh - kh], [0, mw * sw - kw], [0, 0], [0, 0]], constantValue: 0 });
  }
  // (mh, sh, mw, sw, c, o) → (mh, sh, mw, sw, o, c) → (mh, sh, mw, o, sw, c) → (mh, mw, o, sh, sw, c)
  f = k.run('Reshape', { x: f }, { shape: [mh * sh * mw * sw, inC, outC] });
  f = k.run('Transpose', { x: f }, { perm: [0, 2, 1] });
  f = k.run('Reshape', { x: f }, { shape: [mh * sh * mw, sw, outC, inC] });
  f = k.run('Transpose', { x: f }, { perm: [0, 2, 1, 3] });
  f = k.run('Reshape', { x: f }, { shape: [mh, sh, mw * outC, sw * inC] });
  f = k.run('Transpose', { x: f }, { perm: [0, 2, 1, 3] });
  const taps = mh * mw;
  if (taps > 1) {
    // Flipping u and v together reverses the row-major (u, v) index, so the
    // flip is the anti-identity J times the filter viewed as [taps, rest].
    // J·F is exact: every output is 1·w plus products 0·w = ±0 (a filter
    // value that is already Inf or NaN would spread NaN to its column).
    const j = new Float32Array(taps * taps);
    for (let t = 0; t < taps; t++) j[t * taps + (taps - 1 - t)] = 1;
    f = k.run('Reshape', { x: f }, { shape: [1, taps, outC * phases * inC] });
    f = k.run('BatchMatMul', { a: k.constant([1, taps, taps], j), b: f }, { transposeA: false, transposeB: false });
  }
  return k.run('Reshape', { x: f }, { shape: [mh, mw, outC, phases * inC] });
}

/**
 * dx for NHWC tensors.
 * @param inShape dx shape [batch, height, width, inChannels]
 * @param strides [strideHeight, strideWidth], each ≥ 1
 * @param padTop rows of implicit zeros above the input in the forward conv
 * @param padLeft columns of implicit zeros left of the input in the forward conv
 */
function backpropInputNHWC(
  strategy: Strategy,
  k: StockKernels,
  dy: TensorInfo,
  filter: TensorInfo,
  inShape: Shape4,
  strides: [number, number],
  padTop: number,
  padLeft: number,
): TensorInfo {
  const [n, h, w, inC] = inShape;
  const [kh, kw, , outC] = shape4(filter.shape, 'filter');
  const [, dyH, dyW] = shape4(dy.shape, 'dy');
  const [sh, sw] = strides;
  const rows = axisPhases(kh, sh, padTop, h, dyH);
  const cols = axisPhases(kw, sw, padLeft, w, dyW);
  const f = phaseFilter(k, filter, strides);
  const [mh, mw] = shape4(f.shape, 'phase filter');
  const zeros = (shape: number[]): TensorInfo => k.run('Fill', {}, { shape, value: 0, dtype: 'float32' });
  /** Phase (rp, cp)'s exact sub-kernel [taps_h, taps_w, outC, inC] out of f. */
  const subKernel = (rp: AxisPhase, cp: AxisPhase): TensorInfo =>
    k.run('Slice', { x: f }, { begin: [mh - rp.taps, mw - cp.taps, 0, (rp.r * sw + cp.r) * inC], size: [rp.taps, cp.taps, outC, inC] });
  const windows = new Map<string, TensorInfo>();
  /** dy cut to a window (one Slice per distinct window) and the Conv2D padding that completes it. */
  const conv = (rw: AxisWindow, cw: AxisWindow, kernel: TensorInfo, channels: number): TensorInfo => {
    let x = dy;
    if (rw.from !== 0 || rw.to !== dyH - 1 || cw.from !== 0 || cw.to !== dyW - 1) {
      const key = `${rw.from},${rw.to},${cw.from},${cw.to}`;
      x = windows.get(key) ?? k.run('Slice', { x: dy }, { begin: [0, rw.from, cw.from, 0], size: [n, rw.to - rw.from + 1, cw.to - cw.from + 1, outC] });
      windows.set(key, x);
    }
    const z = k.run('Conv2D', { x, filter: kernel }, {
      strides: [1, 1],
      pad: [[0, 0], [rw.padBefore, rw.padAfter], [cw.padBefore, cw.padAfter], [0, 0]],
      dataFormat: 'NHWC',
      dilations: [1, 1],
    });
    const [, zh, zw, zc] = shape4(z.shape, 'Conv2D output');
    if (zh !== rows.blocks || zw !== cols.blocks || zc !== channels) {
      throw new Error(`${KERNEL_NAME} (wasm): internal shape error, Conv2D gave [${z.shape.join(', ')}], expected [${n}, ${rows.blocks}, ${cols.blocks}, ${channels}]`);
    }
    return z;
  };
  const empty = (w: AxisWindow): boolean => w.to < w.from;

  const outs: TensorInfo[] = [];
  const sharedRows = sharedAxis(rows, dyH);
  const sharedCols = sharedAxis(cols, dyW);
  if (sharedRows === undefined || sharedCols === undefined || empty(sharedRows.window) || empty(sharedCols.window)) {
    // No filter tap or no dy element reaches the input at all.
    return zeros([n, h, w, inC]);
  }
  if (strategy === 'per-phase' || (strategy === 'auto' && inC >= PER_PHASE_MIN_CHANNELS)) {
    for (const rp of rows.phases) {
      for (const cp of cols.phases) {
        outs.push(
          rp.taps === 0 || cp.taps === 0 || empty(rp.window) || empty(cp.window)
            ? zeros([n, rows.blocks, cols.blocks, inC])
            : conv(rp.window, cp.window, subKernel(rp, cp), inC),
        );
      }
    }
  } else {
    // One Conv2D for all phases: each sub-kernel zero-padded into the shared
    // span_h × span_w window, stacked on the output-channel axis.
    const parts: TensorInfo[] = [];
    rows.phases.forEach((rp, i) => {
      cols.phases.forEach((cp, j) => {
        const pr = sharedRows.place[i];
        const pc = sharedCols.place[j];
        if (pr === undefined || pc === undefined) {
          parts.push(zeros([sharedRows.span, sharedCols.span, outC, inC]));
          return;
        }
        let sub = subKernel(rp, cp);
        if (pr.before + pr.after + pc.before + pc.after > 0) {
          sub = k.run('PadV2', { x: sub }, { paddings: [[pr.before, pr.after], [pc.before, pc.after], [0, 0], [0, 0]], constantValue: 0 });
        }
        parts.push(sub);
      });
    });
    const combined = parts.length === 1 ? parts[0]! : k.run('Concat', parts, { axis: 3 });
    outs.push(conv(sharedRows.window, sharedCols.window, combined, parts.length * inC));
  }

  let z = outs.length === 1 ? outs[0]! : k.run('Concat', outs, { axis: 3 });
  if (sh * sw > 1) {
    // [n·B_h, B_w, s_h, s_w·inC] → [n·B_h, s_h, B_w, s_w·inC] is the interleave.
    z = k.run('Reshape', { x: z }, { shape: [n * rows.blocks, cols.blocks, sh, sw * inC] });
    z = k.run('Transpose', { x: z }, { perm: [0, 2, 1, 3] });
    z = k.run('Reshape', { x: z }, { shape: [n, rows.blocks * sh, cols.blocks * sw, inC] });
  }
  if (rows.blocks * sh !== h || cols.blocks * sw !== w) {
    z = k.run('Slice', { x: z }, { begin: [0, 0, 0, 0], size: [n, h, w, inC] });
  }
  return z;
}

/**
 * How the phases run: one exact Conv2D each ('per-phase'), or one Conv2D over
 * zero-padded sub-kernels stacked on the channel axis ('combined'); 'auto'
 * picks per-phase from PER_PHASE_MIN_CHANNELS input channels up.
 */
export type Strategy = 'auto' | 'per-phase' | 'combined';

/**
 * Below this many dx channels the combined Conv2D wins: XNNPACK runs a
 * Conv2D with a handful of output channels far below its peak, and stacking
 * s² phases × 1 channel element-wise costs more than the zero taps (DCGAN's
 * last 64→1 layer: 5 ms combined against 22 ms per phase, batch 64).
 */
export const PER_PHASE_MIN_CHANNELS = 16;

/** The kernelFunc registered for 'Conv2DBackpropInput' on wasm. */
function conv2dBackpropInput(strategy: Strategy, params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { dy, filter } = float32Inputs(KERNEL_NAME, params.inputs, ['dy', 'filter']);
  const a = (params.attrs ?? {}) as unknown as tf.Conv2DBackpropInputAttrs;
  const { info, channelsLast } = checkedConv2DInfo(KERNEL_NAME, a, shape4(a.inputShape, 'inputShape'), shape4(filter.shape, 'filter'), shape4(dy.shape, 'dy'));
  const nhwcIn: Shape4 = [info.batchSize, info.inHeight, info.inWidth, info.inChannels];
  const strides: [number, number] = [info.strideHeight, info.strideWidth];
  return withStockKernels(params.backend as tf.KernelBackend, KERNEL_NAME, (k) => {
    if (channelsLast) return backpropInputNHWC(strategy, k, dy, filter, nhwcIn, strides, info.padInfo.top, info.padInfo.left);
    // wasm kernels are NHWC-only: go there and back.
    const dyNhwc = k.run('Transpose', { x: dy }, { perm: [0, 2, 3, 1] });
    const dx = backpropInputNHWC(strategy, k, dyNhwc, filter, nhwcIn, strides, info.padInfo.top, info.padInfo.left);
    return k.run('Transpose', { x: dx }, { perm: [0, 3, 1, 2] });
  });
}

/** The kernel with a fixed strategy (tests and benchmarks pin one). */
export function conv2dBackpropInputConfigFor(strategy: Strategy): tf.KernelConfig {
  return {
    kernelName: KERNEL_NAME,
    backendName: 'wasm',
    kernelFunc: ((params: Parameters<tf.KernelFunc>[0]) => conv2dBackpropInput(strategy, params)) as tf.KernelFunc,
  };
}

/** Registered by register.ts in place of the stock wasm kernel. */
export const conv2dBackpropInputConfig: tf.KernelConfig = conv2dBackpropInputConfigFor('auto');
