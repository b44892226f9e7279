/**
 * Sample grids from fixed noise: the same 64 latents (drawn once from the run
 * seed) every time, so successive grids show how G evolves rather than noise.
 * How G's output is drawn is the model definition's `rendering` (registry.ts):
 * `images` as a grid, `points` as a scatter plot.
 */
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-write.js';
import { join } from 'node:path';
import { Stream, normalRows } from './rng.js';
import type { ModelSpecBase } from './models/api.js';
import { modelDefinition } from './models/registry.js';
import { sampleShapeOf } from './models/spec.js';
import type { GanTrainer } from './gan/api.js';
import { imageGridPng, scatterPlotPng } from './image/grid.js';
import { MIXTURES } from './data/mixtures.js';
import { positionRange } from './data/sampler.js';

export const SAMPLE_COUNT = 64;
/** Fewest points a scatter plot shows: 64 points say little about a mixture's modes. */
export const MIN_SCATTER_POINTS = 1000;

export function fixedLatents(spec: Pick<ModelSpecBase, 'latentDim'>, seed: number, count = SAMPLE_COUNT): Float32Array {
  return normalRows(new Float32Array(count * spec.latentDim), seed, Stream.FixedSampleLatent, 0, positionRange(0, count), spec.latentDim);
}

/**
 * Renders samples of G as a PNG: `count` images as a grid, or (for models
 * rendering `points`) at least MIN_SCATTER_POINTS 2-D points as a scatter
 * plot, with the mixture's modes marked when `dataset` names one.
 */
export function renderSamples(trainer: GanTrainer, spec: ModelSpecBase, seed: number, count = SAMPLE_COUNT, dataset?: string): Buffer {
  const points = modelDefinition(spec.kind).rendering === 'points';
  const n = points ? Math.max(count, MIN_SCATTER_POINTS) : count;
  const out = trainer.generate(fixedLatents(spec, seed, n), n);
  if (points) {
    const mix = dataset ? MIXTURES[dataset] : undefined;
    return scatterPlotPng(out, mix ? { modes: { centres: mix.centres, sigma: mix.sigma } } : {});
  }
  const shape = sampleShapeOf(spec);
  // Small images are hard to see: magnify so the grid is at least ~500 px wide.
  const scale = Math.max(1, Math.floor(500 / (Math.ceil(Math.sqrt(n)) * (shape[1]! + 2))));
  return imageGridPng(out, n, shape, { scale });
}

/** Writes samples/step-XXXXXXXX.png and refreshes samples/latest.png atomically. Returns the step file's path. */
export async function writeSampleGrid(run: { trainer: GanTrainer; spec: ModelSpecBase; training: { seed: number; dataset: string } }, dir: string, step: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const png = renderSamples(run.trainer, run.spec, run.training.seed, SAMPLE_COUNT, run.training.dataset);
  const file = join(dir, `step-${String(step).padStart(8, '0')}.png`);
  await writeFileAtomic(file, png);
  await writeFileAtomic(join(dir, 'latest.png'), png);
  return file;
}
