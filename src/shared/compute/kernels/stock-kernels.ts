/**
 * Shared plumbing of distgan's wasm kernels: running the backend's own stock
 * kernels on TensorInfos while keeping every intermediate, so that all of them
 * but the result are freed whether the kernel succeeds or throws. Kernels that
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
