/**
 * LeakyRelu for the wasm backend, and a LeakyRelu gradient, both built from
 * the backend's fast kernels (Prelu, Fill; Step, Multiply).
 *
 * Why: stock wasm's LeakyRelu, Greater and Select kernels are scalar loops.
 * tfjs's LeakyRelu gradient is where(x > 0, dy, α·dy): a Greater and a Select
 * over every activation. A DCGAN-MNIST step at batch 64 applies leakyReLU
 * ten times over tensors of up to 1.6 M floats, forward and backward.
 * [128, 14, 14, 64]: stock LeakyRelu ~5 ms, Prelu with a per-channel α ~1 ms
 * (a scalar α takes XNNPACK's one-channel path and is no faster).
 *
 * Both are exact rewrites, not approximations:
 *   leakyRelu(x) = prelu(x, [α, …, α])   (x < 0 ? α·x : x, the same float32 product)
 *   dx = dy · step(x, α)                  (step(x, α) = x > 0 ? 1 : α, as Greater decides)
 * dy·1 = dy and dy·α is the same float32 product as tfjs's mul(dy, α), so
 * the results equal the stock ones bit for bit (tests compare them).
 */
import { tf } from '../tf.js';

import { requiredInputs, withStockKernels, type TensorInfo } from './stock-kernels.js';

const KERNEL_NAME = 'LeakyRelu';

function leakyRelu(params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { x } = requiredInputs(KERNEL_NAME, params.inputs, ['x']);
  const { alpha } = (params.attrs ?? {}) as unknown as tf.LeakyReluAttrs;
  return withStockKernels(params.backend as tf.KernelBackend, KERNEL_NAME, (k) => {
    if (x.dtype !== 'float32' || typeof alpha !== 'number' || x.shape.length === 0 || x.shape.includes(0)) {
      return k.run(KERNEL_NAME, { x }, { alpha });
    }
    const slopes = k.run('Fill', {}, { shape: [x.shape[x.shape.length - 1]!], value: alpha, dtype: 'float32' });
    return k.run('Prelu', { x, alpha: slopes });
  });
}

/** Registered by register.ts in place of the stock wasm kernel (which it calls for non-float32). */
export const leakyReluConfig: tf.KernelConfig = {
  kernelName: KERNEL_NAME,
  backendName: 'wasm',
  kernelFunc: leakyRelu as tf.KernelFunc,
};

/** The LeakyRelu gradient without Greater and Select; register.ts installs it while our wasm kernels are in. */
export const leakyReluGradConfig: tf.GradConfig = {
  kernelName: KERNEL_NAME,
  inputsToSave: ['x'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
    const [x] = saved;
    const { alpha } = attrs as unknown as tf.LeakyReluAttrs;
    const g = dy as tf.Tensor;
    return { x: () => tf.mul(g, tf.step(x as tf.Tensor, alpha)) };
  },
};
