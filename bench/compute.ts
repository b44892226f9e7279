/**
 * `distgan bench --suite compute`: DCGAN-MNIST training throughput at batch 64
 * on the selected backend, with the stock variants and PyTorch on the CPU
 * (1 thread and all threads, bench/torch_dcgan.py) side by side, each in its
 * own process of the same invocation. The last stdout line is the JSON result;
 * its `torch` key is `{available: false, reason}` where PyTorch cannot be
 * imported (Debian: python3-torch), which does not fail the bench, and
 * `{skipped: flag}` with --no-torch or --no-side-by-side.
 *
 * The selected backend's measurement ("ours") failing fails the bench: it
 * throws the child's error (code and exit code kept: a backend this machine
 * lacks is DISTGAN_E_BACKEND_UNAVAILABLE, exit 2) and prints no JSON. A side
 * variant failing is only reported, in the JSON. With `--backend webgpu` the
 * measuring process gets the project's software Vulkan when the machine has
 * no Vulkan of its own (vulkan-env.ts webgpuChildEnv).
 */
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/shared/version.js';
import { webgpuChildEnv } from '../src/shared/compute/vulkan-env.js';
import { childFailure, probeTorch, runJsonChild, runJsonCommand } from './child.js';
import type { ComputeChildResult } from './compute-child.js';

/** What bench/torch_dcgan.py prints for one batch size (or its error). */
interface TorchRun {
  imagesPerSecond?: number;
  secondsPerStep?: number;
  threads?: number;
  torch?: string;
  error?: string;
}

/** One PyTorch CPU measurement, as it goes into the JSON. */
type TorchFigure = { threads: number | 'all'; imagesPerSecond: number; secondsPerStep: number } | { threads: number | 'all'; error: string };

/**
 * PyTorch on the CPU at the same batch, with 1 thread and with every core
 * (torch.set_num_threads), each in its own process: bench/torch_dcgan.py
 * trains the same DCGAN step. When PyTorch cannot be imported the result is
 * `{available: false, reason}` and the bench goes on.
 */
async function torchPeers(o: ComputeBenchOptions, oursImagesPerSecond: number): Promise<Record<string, unknown>> {
  const probe = await probeTorch();
  if (!probe.available) {
    o.log(`compute: PyTorch skipped: ${probe.reason}`);
    return { available: false, reason: probe.reason };
  }
  const script = join(PACKAGE_ROOT, 'bench', 'torch_dcgan.py');
  const measure = async (threads: 1 | 'all'): Promise<TorchFigure> => {
    const label = threads === 1 ? '1 thread' : `all ${probe.cpus} threads`;
    o.log(`compute: PyTorch ${probe.version} CPU at batch ${o.batchSize}, ${label} (2 warm-up + ${o.steps} timed steps)`);
    const args = [script, '--device', 'cpu', '--batch', String(o.batchSize), '--warmup', '2', '--steps', String(o.steps), '--threads', String(threads)];
    const r = await runJsonCommand<TorchRun>(probe.python, args, 1_800_000);
    const res = r.result;
    const error = res?.error ?? r.error ?? (typeof res?.imagesPerSecond === 'number' ? undefined : 'no figure in its output');
    if (error !== undefined) {
      o.log(`  PyTorch (${label}): ${error}`);
      return { threads, error };
    }
    o.log(`  PyTorch (${label}): ${res!.imagesPerSecond!.toFixed(1)} img/s (${res!.secondsPerStep!.toFixed(3)} s/step)`);
    return { threads: res!.threads ?? threads, imagesPerSecond: res!.imagesPerSecond!, secondsPerStep: res!.secondsPerStep! };
  };
  const oneThread = await measure(1);
  const allThreads = await measure('all');
  const ratio = (f: TorchFigure): number | null => ('imagesPerSecond' in f && f.imagesPerSecond > 0 ? oursImagesPerSecond / f.imagesPerSecond : null);
  return {
    available: true,
    version: probe.version,
    python: probe.python,
    device: 'cpu',
    batchSize: o.batchSize,
    // bench/torch_dcgan.py: the same G, D, losses and Adam; a fixed random real batch.
    oneThread,
    allThreads,
    distganOverTorch: { oneThread: ratio(oneThread), allThreads: ratio(allThreads) },
  };
}

export interface ComputeBenchOptions {
  backend: string;
  batchSize: number;
  steps: number;
  /** Also time the stock cpu backend (one step at batch 4: ~30 s). */
  withCpu: boolean;
  /** Measure the stock wasm variants and PyTorch beside the selected backend (default true). */
  sideBySide?: boolean;
  /** Measure PyTorch on the CPU beside it, with 1 thread and with all (default true; reported unavailable without PyTorch). */
  torch?: boolean;
  log: (line: string) => void;
}

export async function runComputeBench(o: ComputeBenchOptions): Promise<Record<string, unknown>> {
  const child = join(PACKAGE_ROOT, 'dist', 'bench', 'compute-child.js');
  const oursEnv = o.backend === 'webgpu' ? webgpuChildEnv() : { env: process.env };
  if (oursEnv.note !== undefined) o.log(`compute: ${oursEnv.note}`);
  const run = async (variant: string, batch: number, warmup: number, steps: number, timeoutS: number) => {
    o.log(`compute: ${variant} at batch ${batch} (${warmup} warm-up + ${steps} timed steps)`);
    const env = variant === 'ours' ? oursEnv.env : process.env;
    const r = await runJsonChild<ComputeChildResult>([child, variant, String(batch), String(warmup), String(steps), '1', o.backend], timeoutS * 1000, env);
    const res = r.result;
    if (variant === 'ours') {
      const failure = childFailure(`bench --suite compute (${o.backend})`, r);
      if (failure !== undefined) throw failure;
    }
    if (res?.error || r.error) o.log(`  ${variant}: ${res?.error ?? r.error}`);
    else if (res) o.log(`  ${variant}: ${res.imagesPerSecond.toFixed(1)} img/s (${res.secondsPerStep.toFixed(3)} s/step) on ${res.backend}`);
    if (res?.referenceConv2dGmacPerSecond !== undefined) {
      const { before, after } = res.referenceConv2dGmacPerSecond;
      o.log(`  machine reference: one stock Conv2D (D's 5×5 s2 64→128 at batch 64) ran at ${before.toFixed(1)} GMAC/s before and ${after.toFixed(1)} after`);
    }
    return res ?? { variant, backend: '?', batchSize: batch, steps: 0, imagesPerSecond: 0, secondsPerStep: NaN, error: r.error };
  };
  const ours = await run('ours', o.batchSize, 2, o.steps, 900);
  const side = o.sideBySide ?? true;
  const skipped = { variant: 'skipped', backend: '', batchSize: 0, steps: 0, imagesPerSecond: NaN, secondsPerStep: NaN, error: 'skipped (--no-side-by-side)' };
  const filterOnly = side ? await run('wasm-filter-only', o.batchSize, 1, Math.max(2, Math.floor(o.steps / 3)), 900) : skipped;
  const stock = side ? await run('wasm-stock', o.batchSize, 0, 1, 300) : skipped;
  const cpu = o.withCpu && side ? await run('cpu', 4, 0, 1, 900) : undefined;
  // --no-side-by-side measures the selected backend alone: no stock variants, no PyTorch.
  const torch = side && (o.torch ?? true) ? await torchPeers(o, ours.imagesPerSecond) : { skipped: side ? '--no-torch' : '--no-side-by-side' };
  return {
    suite: 'compute',
    backend: ours.backend,
    batchSize: o.batchSize,
    imagesPerSecond: ours.imagesPerSecond,
    secondsPerStep: ours.secondsPerStep,
    sideBySide: {
      wasmOurKernelsImagesPerSecond: ours.backend === 'wasm' ? ours.imagesPerSecond : null,
      // distgan's Conv2DBackpropFilter (stock wasm has none) and every other kernel stock.
      wasmOnlyOurFilterKernelImagesPerSecond: filterOnly.error ? null : filterOnly.imagesPerSecond,
      wasmStock: stock.error ? `fails: ${stock.error.slice(0, 200)}` : stock.imagesPerSecond,
      cpuStockBatch4ImagesPerSecond: cpu ? (cpu.error ? `fails: ${cpu.error.slice(0, 200)}` : cpu.imagesPerSecond) : 'skipped (pass --with-cpu; ~30 s per step even at batch 4)',
    },
    ...(ours.referenceConv2dGmacPerSecond !== undefined ? { referenceConv2dGmacPerSecond: ours.referenceConv2dGmacPerSecond } : {}),
    torch,
  };
}
