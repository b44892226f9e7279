/**
 * LeakyRelu for the wasm backend, and a LeakyRelu gradient, both built from
 * the backend's fast element-wise kernels (Relu, Mul, Sub, Step, Add).
 *
 * Why: stock wasm's LeakyRelu, Greater and Select kernels are scalar loops,
 * while Relu, Step and the binary arithmetic kernels run through XNNPACK.
 * tfjs's LeakyRelu gradient is where(x > 0, dy, α·dy): a Greater and a Select
 * over every activation. A DCGAN-MNIST step at batch 64 applies leakyReLU
 * ten times over tensors of up to 1.6 M floats, forward and backward.
 *
 * Both are exact rewrites, not approximations (for finite values):
 *   leakyRelu(x) = relu(x) − relu(−α·x)
 *     x > 0: x − 0 = x;  x ≤ 0: 0 − (−α·x) = α·x
 *   dx = a + α·(dy − a) with a = dy·step(x), step(x) ∈ {0, 1}
 *     x > 0: dy + α·0 = dy;  x ≤ 0: 0 + α·dy = α·dy
 * Each product is by 0 or 1 or is the same α·v the stock kernels compute,
 * and each sum adds ±0, so the results equal the stock ones bit for bit.
 */
import { tf } from '../tf.js';

import { StockKernels, type TensorInfo } from './stock-kernels.js';

const KERNEL_NAME = 'LeakyRelu';

function leakyRelu(params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { inputs, attrs } = params;
  const backend = params.backend as tf.KernelBackend;
  const x = inputs['x'];
  if (x === undefined) throw new Error(`${KERNEL_NAME} (wasm): input x is required`);
  const { alpha } = (attrs ?? {}) as unknown as tf.LeakyReluAttrs;
  const k = new StockKernels(backend, KERNEL_NAME);
  let result: TensorInfo | undefined;
  try {
    if (x.dtype !== 'float32' || typeof alpha !== 'number') {
      result = k.run(KERNEL_NAME, { x }, { alpha });
      return result;
    }
    const positive = k.run('Relu', { x });
    const scaled = k.run('Multiply', { a: x, b: k.constant([], Float32Array.of(-alpha)) });
    result = k.run('Sub', { a: positive, b: k.run('Relu', { x: scaled }) });
    return result;
  } finally {
    k.release(result);
  }
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
    return {
      x: () => {
        const passed = tf.mul(g, tf.step(x as tf.Tensor));
        return tf.add(passed, tf.mul(tf.sub(g, passed), alpha));
      },
    };
  },
};
