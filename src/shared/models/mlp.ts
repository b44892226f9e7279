/**
 * The MLP for low-dimensional samples (2-D points of the synthetic mixtures).
 * One ModelDefinition (api.ts), registered in registry.ts.
 *
 * G: `depth` dense+leakyReLU layers of `hidden` units, then dense → outputDim
 * with tanh, so samples stay in [-1, 1] as the Dataset contract promises.
 * D: the same trunk on the sample, then dense → 1 logit. No BN: the mixtures
 * train fine without it, and it keeps the MLP an exact match for sliced
 * (multi-worker) batches; `--no-batch-norm` therefore changes nothing here.
 */
import { ConfigError } from '../errors.js';
import type { ModelDefinition, ResolvedOptions } from './api.js';
import { LEAKY_ALPHA } from './dcgan.js';
import { requirePositiveInt, shapeText } from './fields.js';
import type { LayerPlan, NetworkPlan } from './layers.js';

export interface MlpSpec {
  kind: 'mlp';
  /** Size of z ~ N(0, I). */
  latentDim: number;
  /** Units per hidden layer, G and D alike (1..65536). */
  hidden: number;
  /** Number of hidden layers, G and D alike (1..64). */
  depth: number;
  /** Floats per sample (2 for points in the plane). */
  outputDim: number;
}

/** Hidden units of the MLP at width 1. */
export const MLP_BASE_HIDDEN = 128;
/** Hidden layers of the MLP (G and D each); a third layer trained no better on ring8 and cost 50% more. */
export const MLP_DEPTH = 2;

function trunk(prefix: 'g' | 'd', spec: MlpSpec): LayerPlan[] {
  const layers: LayerPlan[] = [];
  for (let i = 0; i < spec.depth; i++) {
    layers.push({ type: 'dense', name: `${prefix}_dense${i}`, units: spec.hidden, useBias: true, activation: 'linear' });
    layers.push({ type: 'leakyReLU', name: `${prefix}_act${i}`, alpha: LEAKY_ALPHA });
  }
  return layers;
}

function resolve(sampleShape: readonly number[], opts: ResolvedOptions): MlpSpec {
  if (sampleShape.length !== 1) {
    throw new ConfigError(`--model mlp needs 1-D samples [n]; the dataset has shape ${shapeText(sampleShape)}`);
  }
  return {
    kind: 'mlp',
    latentDim: opts.latentDim,
    hidden: Math.max(1, Math.round(MLP_BASE_HIDDEN * opts.width)),
    depth: MLP_DEPTH,
    outputDim: sampleShape[0]!,
  };
}

export const mlp: ModelDefinition<MlpSpec> = {
  kind: 'mlp',
  autoFor: 'points',
  shapeHint: '[n]',
  keys: ['kind', 'latentDim', 'hidden', 'depth', 'outputDim'],
  rendering: 'points',
  fits: (sampleShape) => sampleShape.length === 1,
  resolve,
  validate: (s) => {
    requirePositiveInt(s, 'hidden', 65536);
    requirePositiveInt(s, 'depth', 64);
    requirePositiveInt(s, 'outputDim', 1 << 20, 'a positive integer');
  },
  generator: (spec) => ({
    name: 'generator',
    inputShape: [spec.latentDim],
    layers: [...trunk('g', spec), { type: 'dense', name: 'g_out', units: spec.outputDim, useBias: true, activation: 'tanh' }],
  }),
  discriminator: (spec) => ({
    name: 'discriminator',
    inputShape: [spec.outputDim],
    layers: [...trunk('d', spec), { type: 'dense', name: 'd_logit', units: 1, useBias: true, activation: 'linear' }],
  }),
};
