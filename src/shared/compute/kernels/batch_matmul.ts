/**
 * BatchMatMul for the wasm backend: the stock kernel, with any transposition
 * done first by the stock Transpose kernel.
 *
 * Why: stock wasm BatchMatMul runs its fast GEMM only for plain A·B. With
 * transposeA or transposeB set it falls back to a loop ~10× slower (measured
 * at DCGAN-MNIST's dense layer, [64, 100]ᵀ·[64, 6272]: 50 ms against 5 ms,
 * plus 0.7 ms for the explicit transpose). Every matMul gradient asks for a
 * transposed operand, so this is most of a dense layer's backward pass.
 * The product is computed by the same stock kernel on the same values, so the
 * result only differs from the stock transposed path by summation order.
 */
import { tf } from '../tf.js';

import { requiredInputs, withStockKernels, type TensorInfo } from './stock-kernels.js';

const KERNEL_NAME = 'BatchMatMul';

/** Perm that swaps the last two axes of a rank-r tensor. */
function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function batchMatMul(params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { a, b } = requiredInputs(KERNEL_NAME, params.inputs, ['a', 'b']);
  const { transposeA = false, transposeB = false } = (params.attrs ?? {}) as unknown as tf.BatchMatMulAttrs;
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(`${KERNEL_NAME} (wasm): a and b must be at least rank 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  }
  return withStockKernels(params.backend as tf.KernelBackend, KERNEL_NAME, (k) => {
    // The stock kernel validates dtypes and inner sizes and names them in its error.
    const at = transposeA ? k.run('Transpose', { x: a }, { perm: swapLastTwo(a.shape.length) }) : a;
    const bt = transposeB ? k.run('Transpose', { x: b }, { perm: swapLastTwo(b.shape.length) }) : b;
    return k.run(KERNEL_NAME, { a: at, b: bt }, { transposeA: false, transposeB: false });
  });
}

/** Registered by register.ts in place of the stock wasm kernel (which it calls). */
export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: KERNEL_NAME,
  backendName: 'wasm',
  kernelFunc: batchMatMul as tf.KernelFunc,
};
