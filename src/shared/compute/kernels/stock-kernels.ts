/**
 * Shared plumbing of distgan's wasm kernels: running the backend's own stock
 * kernels on TensorInfos while keeping every intermediate, so that all of them
 * but the result are freed whether the kernel succeeds or throws. Kernels that
 * alias their input (Reshape) take their own reference, so disposing every
 * output exactly once is always right.
 */
import { tf } from '../tf.js';

export type TensorInfo = tf.TensorInfo;
export type Shape4 = [number, number, number, number];

/** Checks a shape is rank 4; `owner` names the distgan kernel in the error. */
export function shape4(shape: readonly number[], what: string, owner: string): Shape4 {
  if (shape.length !== 4) throw new Error(`${owner} (wasm): ${what} must be rank 4, got shape [${shape.join(', ')}]`);
  return [shape[0] as number, shape[1] as number, shape[2] as number, shape[3] as number];
}

export class StockKernels {
  private readonly made: TensorInfo[] = [];

  /** `owner` names the distgan kernel in error messages. */
  constructor(private readonly backend: tf.KernelBackend, private readonly owner: string) {}

  run(kernelName: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown> = {}): TensorInfo {
    const kernel = tf.getKernel(kernelName, 'wasm');
    if (kernel === undefined) {
      throw new Error(`distgan's wasm ${this.owner} needs the stock wasm kernel '${kernelName}', which is not registered`);
    }
    const out = kernel.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend: this.backend });
    if (Array.isArray(out)) throw new Error(`stock wasm kernel '${kernelName}' returned ${out.length} outputs, expected 1`);
    this.made.push(out);
    return out;
  }

  /** Frees every intermediate except `keep` (pass undefined to free all). */
  release(keep: TensorInfo | undefined): void {
    for (const t of this.made) if (t !== keep) this.backend.disposeData(t.dataId);
    this.made.length = 0;
  }
}
