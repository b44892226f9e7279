/**
 * `distgan bench --suite data`: does reading a prepared dataset stall
 * training? A worker's loop is reproduced in one process on a 64×64 RGB
 * packed dataset larger than the reader's cache: each step takes its slice
 * (prefetched while the previous step computed), starts the prefetch of the
 * next slice, then runs a real DCGAN-64 RGB step (D gradients + Adam, G
 * gradients + Adam) on the chosen backend. Flips are on, as with --flip. The same loop is timed again
 * without prefetch, and the reader alone (no compute) gives the rate the data
 * path can sustain, which bounds how fast a GPU could be fed.
 *
 * The dataset is generated once under .cache/bench-data/ and reused. It is
 * read through the OS page cache, which holds it after generation: the
 * figures are for a warm page cache (local SSD or a warmed shared mount).
 */
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/shared/version.js';
import { initBackend } from '../src/shared/compute/backend.js';
import type { BackendRequest } from '../src/shared/compute/backends.js';
import { openPackedDataset, DEFAULT_CACHE_BYTES, type PackedDataset } from '../src/shared/data/packed.js';
import { stageOutput } from '../src/shared/data/prepare/output.js';
import { PackedWriter } from '../src/shared/data/prepare/writer.js';
import { EpochSampler, positionRange } from '../src/shared/data/sampler.js';
import { TfGanTrainer } from '../src/shared/gan/trainer.js';
import { resolveGanOptions } from '../src/shared/gan/options.js';
import { resolveModelSpec } from '../src/shared/models/spec.js';
import { DistganError } from '../src/shared/errors.js';

export interface DataBenchOptions {
  /** Timed steps per loop (after two warm-up steps). */
  steps: number;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
  /** Per-worker batch, images (default 32). */
  batchSize?: number;
  /** Compute backend (default 'auto'). */
  backend?: BackendRequest;
  /** DCGAN width multiplier (default 0.5: a real DCGAN-64 that still steps in seconds on two CPU cores). */
  width?: number;
  /** Samples in the generated dataset (default 16,384 = 201 MB at 64×64×3, 3× the default cache). */
  count?: number;
  /** Where the dataset is kept between runs (default <package>/.cache/bench-data). */
  cacheDir?: string;
  /** Reader row cache, bytes (default DEFAULT_CACHE_BYTES, 64 MiB). */
  cacheBytes?: number;
}

export interface LoopFigures {
  /** Time waiting for the step's data / wall time of the steps. */
  dataWaitFraction: number;
  imagesPerSecond: number;
  secondsPerStep: number;
  dataWaitSecondsPerStep: number;
}

export interface DataBenchResult extends LoopFigures {
  suite: 'data';
  backend: string;
  batchSize: number;
  steps: number;
  width: number;
  dataset: { path: string; count: number; shape: number[]; bytes: number; generatedSeconds: number | null };
  /** The same loop reading each slice only when needed. */
  withoutPrefetch: LoopFigures;
  /** The reader alone (random slices, cache off, no compute). */
  readOnly: { imagesPerSecond: number; megabytesPerSecond: number; secondsPerSlice: number };
  cacheBytes: number;
  cacheHitRate: number;
}

const SIDE = 64;
const CHANNELS = 3;
const SEED = 1;

/** Generates (or reuses) the bench dataset; returns its path and the seconds generation took (null if reused). */
async function benchDataset(dir: string, count: number, log: (l: string) => void): Promise<{ path: string; seconds: number | null }> {
  const path = join(dir, `${SIDE}x${SIDE}x${CHANNELS}-n${count}`);
  try {
    const ds = await openPackedDataset(path, { log: () => {} });
    // One generated before chunk checksums existed is made again, so that the
    // figures include the checks a freshly prepared dataset gets.
    const ok = ds.count === count && ds.checksChunks;
    await ds.close();
    if (ok) return { path, seconds: null };
  } catch (err) {
    if (!(err instanceof DistganError)) throw err;
  }
  log(`data: generating ${count} random ${SIDE}×${SIDE}×${CHANNELS} samples in ${path}`);
  const t0 = performance.now();
  const staged = await stageOutput(path, { force: true });
  try {
    const w = await PackedWriter.create(staged.dir, { shape: [SIDE, SIDE, CHANNELS] });
    const chunk = Buffer.allocUnsafe(256 * w.sampleBytes);
    for (let i = 0; i < count; i += 256) {
      randomFillSync(chunk);
      for (let k = 0; k < 256 && i + k < count; k++) await w.append(chunk.subarray(k * w.sampleBytes, (k + 1) * w.sampleBytes));
    }
    await w.finish({ source: { kind: 'generated', input: 'bench/data.ts (random bytes)' } });
    await staged.commit();
  } catch (err) {
    await staged.abort();
    throw err;
  }
  return { path, seconds: (performance.now() - t0) / 1000 };
}

function figures(batch: number, steps: number, waitS: number, totalS: number): LoopFigures {
  return {
    dataWaitFraction: waitS / totalS,
    imagesPerSecond: (batch * steps) / totalS,
    secondsPerStep: totalS / steps,
    dataWaitSecondsPerStep: waitS / steps,
  };
}

export async function runDataBench(o: DataBenchOptions): Promise<DataBenchResult> {
  const batch = o.batchSize ?? 32;
  const width = o.width ?? 0.5;
  const count = o.count ?? 16_384;
  const cacheBytes = o.cacheBytes ?? DEFAULT_CACHE_BYTES;
  const steps = o.steps;
  const { path, seconds: generatedSeconds } = await benchDataset(o.cacheDir ?? join(PACKAGE_ROOT, '.cache', 'bench-data'), count, o.log);

  const choice = await initBackend(o.backend ?? 'auto', { log: (l) => o.log(`data: ${l}`) });
  const shape = [SIDE, SIDE, CHANNELS];
  const spec = resolveModelSpec('dcgan', shape, { width });
  const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: SEED }), shape);
  const sampler = new EpochSampler(count, batch, SEED);
  const positions = positionRange(0, batch);

  const computeStep = async (step: number, real: Float32Array): Promise<void> => {
    const d = await trainer.computeDGradients({ step, positions, globalBatch: batch, real });
    trainer.applyDGradients(d.gradients, d.aux);
    const g = await trainer.computeGGradients({ step, positions, globalBatch: batch });
    trainer.applyGGradients(g.gradients, g.aux);
  };

  /** The worker's loop over steps [first, first + n); returns (seconds waiting for data, seconds in total). */
  const loop = async (ds: PackedDataset, first: number, n: number, prefetch: boolean): Promise<[number, number]> => {
    let wait = 0;
    const t0 = performance.now();
    if (prefetch) ds.prefetch(sampler.indices(first), { step: first });
    for (let s = first; s < first + n; s++) {
      const r0 = performance.now();
      const real = await ds.read(sampler.indices(s), { step: s });
      wait += performance.now() - r0;
      if (prefetch) ds.prefetch(sampler.indices(s + 1), { step: s + 1 });
      await computeStep(s, real);
    }
    return [wait / 1000, (performance.now() - t0) / 1000];
  };

  // Both loops run in two halves, in the order with, without, without, with
  // (ABBA), so that warm-up and drifting machine load do not favour either.
  const sums = { with: [0, 0], without: [0, 0] };
  let cacheHits = 0;
  let rowsRead = 0;
  let nextStep = 1;
  const segment = async (prefetch: boolean, n: number): Promise<void> => {
    if (n === 0) return;
    const ds = await openPackedDataset(path, { flip: true, seed: SEED, cacheBytes });
    const [wait, total] = await loop(ds, nextStep, n, prefetch);
    nextStep += n + 1;
    const acc = prefetch ? sums.with : sums.without;
    acc[0] += wait;
    acc[1] += total;
    if (prefetch) {
      cacheHits += ds.stats().cacheHits;
      rowsRead += ds.stats().rowsRead;
    }
    await ds.close();
  };

  try {
    // Warm-up: kernels compile, and the reader's code paths (prefetched or
    // not, flipped or not) get optimised before anything is timed.
    o.log(`data: DCGAN-64 RGB (width ${width}) on ${choice.name}, batch ${batch}: 2 warm-up steps`);
    const warm = await openPackedDataset(path, { cacheBytes: 0, flip: true, seed: SEED });
    await loop(warm, 0, 1, false);
    await loop(warm, 1, 1, true);
    await warm.close();
    nextStep = 3;

    const first = Math.ceil(steps / 2);
    o.log(`data: ${steps} steps with prefetch and ${steps} without, in halves (ABBA)`);
    await segment(true, first);
    await segment(false, first);
    await segment(false, steps - first);
    await segment(true, steps - first);
    const withPf = figures(batch, steps, sums.with[0]!, sums.with[1]!);
    const noPf = figures(batch, steps, sums.without[0]!, sums.without[1]!);
    o.log(`  with prefetch: wait ${(withPf.dataWaitFraction * 100).toFixed(2)}% of step time, ${withPf.imagesPerSecond.toFixed(1)} img/s`);
    o.log(`  without:       wait ${(noPf.dataWaitFraction * 100).toFixed(2)}% of step time, ${noPf.imagesPerSecond.toFixed(1)} img/s`);

    // The reader alone, cache off: every row comes from a positional read.
    const reader = await openPackedDataset(path, { cacheBytes: 0, flip: true, seed: SEED });
    const slices = Math.max(50, steps * 10);
    const r0 = performance.now();
    for (let s = 0; s < slices; s++) await reader.read(sampler.indices(1000 + s), { step: s });
    const readS = (performance.now() - r0) / 1000;
    await reader.close();
    const readOnly = {
      imagesPerSecond: (slices * batch) / readS,
      megabytesPerSecond: (slices * batch * SIDE * SIDE * CHANNELS) / readS / 1e6,
      secondsPerSlice: readS / slices,
    };
    o.log(`data: reader alone ${readOnly.imagesPerSecond.toFixed(0)} img/s (${readOnly.megabytesPerSecond.toFixed(0)} MB/s)`);

    return {
      suite: 'data',
      ...withPf,
      backend: choice.name,
      batchSize: batch,
      steps,
      width,
      dataset: { path, count, shape, bytes: count * SIDE * SIDE * CHANNELS, generatedSeconds },
      withoutPrefetch: noPf,
      readOnly,
      cacheBytes,
      cacheHitRate: cacheHits / Math.max(1, cacheHits + rowsRead),
    };
  } finally {
    trainer.dispose();
  }
}
