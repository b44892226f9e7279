/**
 * Puts distgan's own wasm kernels into tfjs's kernel registry.
 *
 * - Conv2DBackpropFilter: the stock wasm backend has none, so training a conv
 *   net on wasm fails without it.
 * - Conv2DBackpropInput: replaces the stock loop with a polyphase Conv2D
 *   (several times faster; see conv2d_backprop_input.ts).
 *
 * Call registerWasmKernels() once the wasm backend is initialised (backend.ts
 * does, right after tf.setBackend('wasm')) and before the first op: the stock
 * kernel being replaced must already have run its setup against the backend so
 * that unregisterWasmKernels() can put it back in working order.
 */
import { tf } from '../tf.js';
import { conv2dBackpropFilterConfig } from './conv2d_backprop_filter.js';
import { conv2dBackpropInputConfig } from './conv2d_backprop_input.js';

/** Every kernel distgan registers for the wasm backend. */
export const WASM_KERNELS: readonly tf.KernelConfig[] = [conv2dBackpropFilterConfig, conv2dBackpropInputConfig];

/** Stock kernels displaced by ours, by kernel name, for unregisterWasmKernels(). */
const displaced = new Map<string, tf.KernelConfig>();

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
      displaced.set(config.kernelName, current);
      tf.unregisterKernel(config.kernelName, 'wasm');
    }
    tf.registerKernel(config);
  }
}

/** Removes distgan's wasm kernels and restores the stock ones they displaced (benchmarks, tests). */
export function unregisterWasmKernels(): void {
  for (const config of WASM_KERNELS) {
    if (tf.getKernel(config.kernelName, 'wasm') !== config) continue;
    tf.unregisterKernel(config.kernelName, 'wasm');
    const stock = displaced.get(config.kernelName);
    if (stock !== undefined) tf.registerKernel(stock);
    displaced.delete(config.kernelName);
  }
}

/** True when every kernel of WASM_KERNELS is the one registered for 'wasm'. */
export function wasmKernelsRegistered(): boolean {
  return WASM_KERNELS.every((config) => tf.getKernel(config.kernelName, 'wasm') === config);
}
