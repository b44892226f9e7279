/**
 * One compute measurement in its own process (kernel registries are
 * per-process): a single-process GAN training loop — D gradients, D apply,
 * G gradients, G apply — on one backend variant. Prints one JSON line.
 *
 *   node dist/bench/compute-child.js <variant> <batch> <warmupSteps> <timedSteps> [width] [backend]
 *
 * A failure (the backend cannot start, a step throws) is still one JSON line,
 * with `error`, the DistganError `code` and its `exitCode`, which the process
 * also exits with.
 *
 * variants: ours (initBackend's choice: wasm + distgan kernels here),
 *           wasm-stock (no distgan kernels), wasm-filter-only (distgan's
 *           Conv2DBackpropFilter, which stock wasm lacks, and every other
 *           kernel and gradient stock), cpu (stock).
 */
import { tf } from '../src/shared/compute/tf.js';
import { initBackend } from '../src/shared/compute/backend.js';
import { unregisterWasmKernels } from '../src/shared/compute/kernels/register.js';
import { conv2dBackpropFilterConfig } from '../src/shared/compute/kernels/conv2d_backprop_filter.js';
import { MnistDataset } from '../src/shared/data/mnist.js';
import { EpochSampler, positionRange } from '../src/shared/data/sampler.js';
import { TfGanTrainer } from '../src/shared/gan/trainer.js';
import { resolveGanOptions } from '../src/shared/gan/options.js';
import { resolveModelSpec } from '../src/shared/models/spec.js';
import { DistganError, describeError } from '../src/shared/errors.js';

export interface ComputeChildResult {
  variant: string;
  backend: string;
  batchSize: number;
  steps: number;
  imagesPerSecond: number;
  secondsPerStep: number;
  /**
   * Speed of one fixed stock Conv2D before and after the timed steps (wasm,
   * variant 'ours' only). This VM's speed drifts by up to a third over
   * minutes; the reference says which state a figure was measured in.
   */
  referenceConv2dGmacPerSecond?: { before: number; after: number };
  /** Why the measurement failed (describeError: message [CODE]: caused by …). */
  error?: string;
  /** The failure's DistganError code (DISTGAN_E_…), when it had one. */
  code?: string;
  /** The exit code the failure maps to (2: bad input such as a backend this machine lacks; 1: runtime). */
  exitCode?: number;
}

/** The result line for a measurement that failed with `e`. */
export function failedResult(variant: string, backend: string, batch: number, e: unknown): ComputeChildResult {
  return {
    variant,
    backend,
    batchSize: batch,
    steps: 0,
    imagesPerSecond: 0,
    secondsPerStep: NaN,
    error: describeError(e),
    ...(e instanceof DistganError ? { code: e.code, exitCode: e.exitCode } : { exitCode: 1 }),
  };
}

/**
 * Median speed of the stock Conv2D of D's second layer (64×14×14×64 ⊗
 * 5×5×64×128, stride 2, 'same'; 642 M multiply-adds at batch 64).
 */
function referenceConv2d(): number {
  const macs = 64 * 7 * 7 * 5 * 5 * 64 * 128;
  const x = tf.randomNormal([64, 14, 14, 64], 0, 1, 'float32', 1);
  const w = tf.randomNormal([5, 5, 64, 128], 0, 1, 'float32', 2);
  const times: number[] = [];
  try {
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same');
      y.dataSync();
      y.dispose();
      if (i >= 2) times.push(performance.now() - t0);
    }
  } finally {
    tf.dispose([x, w]);
  }
  times.sort((a, b) => a - b);
  return macs / (times[Math.floor(times.length / 2)]! / 1000) / 1e9;
}

export async function plainLoop(variant: string, batch: number, warmup: number, steps: number, width = 1, backendRequest = 'wasm'): Promise<ComputeChildResult> {
  const request = variant === 'cpu' ? 'cpu' : variant === 'ours' ? backendRequest : 'wasm';
  const choice = await initBackend(request as 'wasm', { log: () => {} });
  if (variant === 'wasm-stock' || variant === 'wasm-filter-only') unregisterWasmKernels();
  if (variant === 'wasm-filter-only') tf.registerKernel(conv2dBackpropFilterConfig);
  const ds = await MnistDataset.load();
  const spec = resolveModelSpec('dcgan', ds.shape, { width });
  const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: 1 }), ds.shape);
  const sampler = new EpochSampler(ds.count, batch, 1);
  const positions = positionRange(0, batch);
  const one = async (s: number): Promise<void> => {
    const real = await ds.read(sampler.indices(s));
    const d = await trainer.computeDGradients({ step: s, positions, globalBatch: batch, real });
    trainer.applyDGradients(d.gradients, d.aux);
    const g = await trainer.computeGGradients({ step: s, positions, globalBatch: batch });
    trainer.applyGGradients(g.gradients, g.aux);
  };
  const reference = variant === 'ours' && choice.name === 'wasm';
  try {
    for (let s = 0; s < warmup; s++) await one(s);
    const before = reference ? referenceConv2d() : NaN;
    const t0 = performance.now();
    for (let s = warmup; s < warmup + steps; s++) await one(s);
    const secs = (performance.now() - t0) / 1000;
    return {
      variant,
      backend: choice.name,
      batchSize: batch,
      steps,
      imagesPerSecond: (batch * steps) / secs,
      secondsPerStep: secs / steps,
      ...(reference ? { referenceConv2dGmacPerSecond: { before, after: referenceConv2d() } } : {}),
    };
  } catch (e) {
    return failedResult(variant, choice.name, batch, e);
  } finally {
    trainer.dispose();
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/.*\/dist\//, '/dist/'));
if (isMain) {
  const [variant = 'ours', batch = '64', warmup = '2', steps = '10', width = '1', backend = 'wasm'] = process.argv.slice(2);
  let r: ComputeChildResult;
  try {
    r = await plainLoop(variant, Number(batch), Number(warmup), Number(steps), Number(width), backend);
  } catch (e) {
    // Before the timed loop: the backend, the dataset or the model could not be set up.
    r = failedResult(variant, '?', Number(batch), e);
  }
  process.stdout.write(JSON.stringify(r) + '\n');
  process.exit(r.error === undefined ? 0 : (r.exitCode ?? 1));
}
