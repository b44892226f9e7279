/**
 * Shared plumbing of distgan's wasm kernels: running the backend's own stock
 * kernels on TensorInfos while keeping every intermediate, so that all of them
 * but the result are freed whether the kernel succeeds or throws
 * (withStockKernels), plus the input and conv-geometry checks they share. Kernels that
 * alias their input (Reshape) take their own reference, so disposing every
 * output exactly once is always right.
 *
 * Some of distgan's kernels replace a stock kernel of the same name and also
 * call it (BatchMatMul, Tile): register.ts records every stock kernel it
 * displaces here, and run() always reaches the stock one, never ours.
 */
import { tf } from '../tf.js';

export type TensorInfo = tf.TensorInfo;
export type Shape4 = [number, number, number, number];

/** Stock wasm kernels displaced by distgan's, by kernel name. */
const displacedStock = new Map<string, tf.KernelConfig>();

/** Records the stock kernel that one of ours is about to replace (register.ts). */
export function rememberStockKernel(config: tf.KernelConfig): void {
  displacedStock.set(config.kernelName, config);
}

/** Hands back (and forgets) a displaced stock kernel, for unregistering ours. */
export function takeStockKernel(kernelName: string): tf.KernelConfig | undefined {
  const config = displacedStock.get(kernelName);
  displacedStock.delete(kernelName);
  return config;
}

/** The backend's own kernel of that name, even while one of distgan's is registered in its place. */
export function stockKernel(kernelName: string): tf.KernelConfig | undefined {
  return displacedStock.get(kernelName) ?? tf.getKernel(kernelName, 'wasm');
}

/** Checks a shape is rank 4; `owner` names the distgan kernel in the error. */
export function shape4(shape: readonly number[], what: string, owner: string): Shape4 {
  if (shape.length !== 4) throw new Error(`${owner} (wasm): ${what} must be rank 4, got shape [${shape.join(', ')}]`);
  return [shape[0] as number, shape[1] as number, shape[2] as number, shape[3] as number];
}

export class StockKernels {
  private readonly made: TensorInfo[] = [];

  /** `owner` names the distgan kernel in error messages. */
  constructor(private readonly backend: tf.KernelBackend, private readonly owner: string) {}

  /** `inputs` is a list for the kernels that take one (Concat). */
  run(kernelName: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: Record<string, unknown> = {}): TensorInfo {
    const kernel = stockKernel(kernelName);
    if (kernel === undefined) {
      throw new Error(`distgan's wasm ${this.owner} needs the stock wasm kernel '${kernelName}', which is not registered`);
    }
    const out = kernel.kernelFunc({ inputs: inputs as tf.NamedTensorInfoMap, attrs: attrs as tf.NamedAttrMap, backend: this.backend });
    if (Array.isArray(out)) throw new Error(`stock wasm kernel '${kernelName}' returned ${out.length} outputs, expected 1`);
    this.made.push(out);
    return out;
  }

  /**
   * A small float32 constant on the backend (an index-free way to build
   * permutation matrices); freed by release() like any intermediate.
   */
  constant(shape: number[], values: Float32Array): TensorInfo {
    const backend = this.backend as tf.KernelBackend & {
      makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.BackendValues): TensorInfo;
    };
    const out = backend.makeOutput(shape, 'float32', undefined, values);
    this.made.push(out);
    return out;
  }

  /** Frees every intermediate except `keep` (pass undefined to free all). */
  release(keep: TensorInfo | undefined): void {
    for (const t of this.made) if (t !== keep) this.backend.disposeData(t.dataId);
    this.made.length = 0;
  }
}

/**
 * Runs a kernel body with its own StockKernels, and frees every intermediate
 * the body made except the result it returns, whether it returns or throws.
 */
export function withStockKernels(backend: tf.KernelBackend, owner: string, body: (k: StockKernels) => TensorInfo): TensorInfo {
  const k = new StockKernels(backend, owner);
  let result: TensorInfo | undefined;
  try {
    result = body(k);
    return result;
  } finally {
    k.release(result);
  }
}

/** The named inputs of a kernel call; throws naming them if one is missing. */
export function requiredInputs<const N extends string>(owner: string, inputs: tf.NamedTensorInfoMap, names: readonly N[]): Record<N, TensorInfo> {
  const out = {} as Record<N, TensorInfo>;
  for (const name of names) {
    const t = inputs[name];
    if (t === undefined) throw new Error(`${owner} (wasm): input${names.length > 1 ? 's' : ''} ${names.join(' and ')} ${names.length > 1 ? 'are' : 'is'} required`);
    out[name] = t;
  }
  return out;
}

/** requiredInputs, and each must be float32 (the conv-gradient kernels compute nothing else). */
export function float32Inputs<const N extends string>(owner: string, inputs: tf.NamedTensorInfoMap, names: readonly N[]): Record<N, TensorInfo> {
  const out = requiredInputs(owner, inputs, names);
  if (names.some((name) => out[name].dtype !== 'float32')) {
    throw new Error(`${owner} (wasm): float32 only, got ${names.map((name) => `${name} ${out[name].dtype}`).join(' and ')}`);
  }
  return out;
}

/**
 * The forward convolution's geometry, as both conv-gradient kernels need it,
 * checked against dy: batch and channels must agree and strides be ≥ 1.
 * @param xShape the forward input's shape, filterShape [kh, kw, inC, outC]
 */
export function checkedConv2DInfo(
  owner: string,
  a: Pick<tf.Conv2DBackpropFilterAttrs, 'strides' | 'pad' | 'dimRoundingMode' | 'dataFormat'>,
  xShape: Shape4,
  filterShape: Shape4,
  dyShape: Shape4,
): { info: tf.backend_util.Conv2DInfo; channelsLast: boolean } {
  const dataFormat = tf.backend_util.convertConv2DDataFormat(a.dataFormat ?? 'NHWC');
  const info = tf.backend_util.computeConv2DInfo(
    xShape, filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, dataFormat);
  const channelsLast = dataFormat === 'channelsLast';
  const dyC = channelsLast ? dyShape[3] : dyShape[1];
  if (dyShape[0] !== info.batchSize || dyC !== filterShape[3] || info.inChannels !== filterShape[2]) {
    throw new Error(
      `${owner} (wasm): inconsistent shapes: x [${xShape.join(', ')}], dy [${dyShape.join(', ')}], ` +
        `filter [${filterShape.join(', ')}] (${a.dataFormat ?? 'NHWC'})`);
  }
  if (info.strideHeight < 1 || info.strideWidth < 1) {
    throw new Error(`${owner} (wasm): strides must be ≥ 1, got [${info.strideHeight}, ${info.strideWidth}]`);
  }
  return { info, channelsLast };
}
