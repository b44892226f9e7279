/**
 * Building "the run" — dataset, model spec, GAN options and a trainer — from
 * the training config (coordinator) or from the wire spec a worker receives
 * (worker), the same way on both sides so their fingerprints agree.
 */
import type { TrainingConfig } from './config.js';
import type { Dataset } from './data/api.js';
import type { GanTrainer } from './gan/api.js';
import { resolveGanOptions, type GanOptions } from './gan/options.js';
import { TfGanTrainer } from './gan/trainer.js';
import { fingerprintOf, resolveModelSpec, validateModelSpec, type ModelSpec } from './models/spec.js';
import type { RunSpecWire } from './protocol.js';

export interface BuiltRun {
  dataset: Dataset;
  spec: ModelSpec;
  gan: GanOptions;
  training: TrainingConfig;
  trainer: TfGanTrainer;
  wire: RunSpecWire;
  /** Backend the trainer runs on in this process. */
  backend: string;
}

/**
 * The model+config fingerprint: the spec, the optimisation options and the
 * layout the trainer actually built. Equal fingerprints mean two processes
 * built networks with identical variables and will do identical maths.
 */
export function modelFingerprint(spec: ModelSpec, gan: GanOptions, trainer: GanTrainer): string {
  return fingerprintOf({ spec, gan, layout: { g: trainer.gParamCount, d: trainer.dParamCount, aux: trainer.auxCount } });
}

export function ganOptionsOf(training: TrainingConfig): GanOptions {
  return resolveGanOptions({
    lr: training.lr,
    beta1: training.beta1,
    beta2: training.beta2,
    entropyWeight: training.entropyWeight,
    labelSmoothing: training.labelSmoothing,
    instanceNoise: training.instanceNoise,
    seed: training.seed,
  });
}

export function buildRun(
  training: TrainingConfig,
  dataset: Dataset,
  opts: { runId: string; backend: string; stepTimeout: number },
): BuiltRun {
  const spec = resolveModelSpec(training.model, dataset.shape, { width: training.width, batchNorm: training.batchNorm, latentDim: training.latentDim });
  const gan = ganOptionsOf(training);
  const trainer = new TfGanTrainer(spec, gan, dataset.shape);
  const wire: RunSpecWire = {
    runId: opts.runId,
    model: spec as unknown as Record<string, unknown>,
    gan: gan as unknown as Record<string, unknown>,
    dataset: training.dataset,
    datasetFingerprint: dataset.fingerprint,
    modelFingerprint: modelFingerprint(spec, gan, trainer),
    globalBatch: training.batchSize,
    flip: training.flip,
    stepTimeout: opts.stepTimeout,
  };
  return { dataset, spec, gan, training, trainer, wire, backend: opts.backend };
}

/** Worker side: rebuilds the trainer from what the coordinator sent. */
export function buildFromWire(wire: RunSpecWire, dataset: Dataset): { spec: ModelSpec; gan: GanOptions; trainer: GanTrainer; modelFingerprint: string } {
  const spec = wire.model as unknown;
  validateModelSpec(spec);
  const gan = resolveGanOptions(wire.gan as Partial<GanOptions>);
  const trainer = new TfGanTrainer(spec, gan, dataset.shape);
  return { spec, gan, trainer, modelFingerprint: modelFingerprint(spec, gan, trainer) };
}
