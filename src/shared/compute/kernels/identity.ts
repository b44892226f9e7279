/**
 * Identity for the wasm backend: a second reference to the same buffer (the
 * backend counts references, as its own Reshape kernel does), instead of the
 * stock kernel's fresh allocation and copy.
 *
 * Why: tfjs's engine clones every tensor a gradient saves for the backward
 * pass through Identity (saveTensorsForBackwardMode), so the stock copy runs
 * for most activations of every training step: about 20 copies of up to
 * 6 MB per DCGAN-MNIST step at batch 64, ~15 ms. No wasm kernel writes into
 * an existing buffer, so sharing one is safe; the cpu backend's Identity
 * shares too. Strings keep the stock kernel.
 */
import { tf } from '../tf.js';

import { requiredInputs, withStockKernels, type TensorInfo } from './stock-kernels.js';

const KERNEL_NAME = 'Identity';

function identity(params: Parameters<tf.KernelFunc>[0]): TensorInfo {
  const { x } = requiredInputs(KERNEL_NAME, params.inputs, ['x']);
  const backend = params.backend as tf.KernelBackend & { incRef(dataId: tf.DataId): void };
  if (x.dtype === 'string') return withStockKernels(backend, KERNEL_NAME, (k) => k.run(KERNEL_NAME, { x }));
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Registered by register.ts in place of the stock wasm kernel (which it calls for strings). */
export const identityConfig: tf.KernelConfig = {
  kernelName: KERNEL_NAME,
  backendName: 'wasm',
  kernelFunc: identity as tf.KernelFunc,
};
