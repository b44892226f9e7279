/**
 * Puts distgan's own wasm kernels into tfjs's kernel registry.
 *
 * - Conv2DBackpropFilter: the stock wasm backend has none, so training a conv
 *   net on wasm fails without it.
 * - Conv2DBackpropInput: replaces the stock loop with a polyphase Conv2D
 *   (several times faster; see conv2d_backprop_input.ts).
 * - BatchMatMul: the stock kernel is ~10× slower with transposeA/transposeB
 *   than without; ours transposes first (batch_matmul.ts).
 * - Tile: the stock kernel moves ~10 M floats/s; broadcastable tiles (every
 *   batch-norm gradient has one) become a broadcast add (tile.ts).
 * - LeakyRelu (and its gradient): stock LeakyRelu, Greater and Select are
 *   scalar loops; exact rewrites into XNNPACK-backed kernels (leaky_relu.ts).
 * - Sum, Mean: reductions over leading axes (every batch-norm and bias
 *   gradient) as one XNNPACK average pool; stock transposes, then loops (reduce.ts).
 * - Identity: shares the buffer (reference-counted, like Reshape) instead of
 *   copying; the engine clones every tensor a gradient saves (identity.ts).
 *
 * Call registerWasmKernels() once the wasm backend is initialised (backend.ts
 * does, right after tf.setBackend('wasm')) and before the first op: the stock
 * kernel being replaced must already have run its setup against the backend so
 * that unregisterWasmKernels() can put it back in working order.
 */
import { tf } from '../tf.js';
import { conv2dBackpropFilterConfig } from './conv2d_backprop_filter.js';
import { conv2dBackpropInputConfig } from './conv2d_backprop_input.js';
import { batchMatMulConfig } from './batch_matmul.js';
import { tileConfig } from './tile.js';
import { leakyReluConfig, leakyReluGradConfig } from './leaky_relu.js';
import { meanConfig, sumConfig } from './reduce.js';
import { identityConfig } from './identity.js';
import { rememberStockKernel, takeStockKernel } from './stock-kernels.js';

/** Every kernel distgan registers for the wasm backend. */
export const WASM_KERNELS: readonly tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  conv2dBackpropInputConfig,
  batchMatMulConfig,
  tileConfig,
  leakyReluConfig,
  sumConfig,
  meanConfig,
  identityConfig,
];

/**
 * Gradients distgan swaps in while its wasm kernels are registered (gradients
 * are global, not per backend; these are exact rewrites into kernels that are
 * fast on wasm, see leaky_relu.ts).
 */
export const WASM_GRADIENTS: readonly tf.GradConfig[] = [leakyReluGradConfig];

/** tfjs's own gradients displaced by WASM_GRADIENTS, by kernel name. */
const displacedGradients = new Map<string, tf.GradConfig>();

/**
 * Registers WASM_KERNELS for 'wasm', replacing stock kernels of the same name
 * (without tfjs's "already registered" warning). Idempotent.
 * Throws if the wasm backend has not been initialised yet.
 */
export function registerWasmKernels(): void {
  if (tf.findBackend('wasm') === null) {
    throw new Error('registerWasmKernels: initialise the wasm backend first (await tf.setBackend("wasm"))');
  }
  for (const config of WASM_KERNELS) {
    const current = tf.getKernel(config.kernelName, 'wasm');
    if (current === config) continue;
    if (current !== undefined) {
      rememberStockKernel(current);
      tf.unregisterKernel(config.kernelName, 'wasm');
    }
    tf.registerKernel(config);
  }
  for (const config of WASM_GRADIENTS) {
    const current = tf.getGradient(config.kernelName);
    if (current === config) continue;
    if (current !== undefined) displacedGradients.set(config.kernelName, current);
    tf.registerGradient(config);
  }
}

/** Removes distgan's wasm kernels and restores the stock ones they displaced (benchmarks, tests). */
export function unregisterWasmKernels(): void {
  for (const config of WASM_KERNELS) {
    if (tf.getKernel(config.kernelName, 'wasm') !== config) continue;
    tf.unregisterKernel(config.kernelName, 'wasm');
    const stock = takeStockKernel(config.kernelName);
    if (stock !== undefined) tf.registerKernel(stock);
  }
  for (const config of WASM_GRADIENTS) {
    if (tf.getGradient(config.kernelName) !== config) continue;
    tf.unregisterGradient(config.kernelName);
    const original = displacedGradients.get(config.kernelName);
    if (original !== undefined) tf.registerGradient(original);
    displacedGradients.delete(config.kernelName);
  }
}

/** True when every kernel of WASM_KERNELS is the one registered for 'wasm' (and our gradients are in). */
export function wasmKernelsRegistered(): boolean {
  return (
    WASM_KERNELS.every((config) => tf.getKernel(config.kernelName, 'wasm') === config) &&
    WASM_GRADIENTS.every((config) => tf.getGradient(config.kernelName) === config)
  );
}
