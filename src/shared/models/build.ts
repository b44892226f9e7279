/**
 * Builds tfjs-layers Sequentials from layer plans (layers.ts): G and D of any
 * registered model. The only models module that loads tfjs; definitions and
 * parameter counts stay tfjs-free.
 *
 * Every kernel initialiser is 'zeros' (and biases tfjs's default zeros): the
 * initial values come from variables.ts (seeded, positional), written over
 * these by the trainer.
 */
import { tfl } from '../compute/tf.js';
import type { LayerPlan, NetworkPlan } from './layers.js';
import { networkPlans, type ModelSpec } from './spec.js';

type Sequential = ReturnType<typeof tfl.sequential>;
type Layer = Parameters<Sequential['add']>[0];

function layerOf(l: LayerPlan, inputShape: { inputShape?: number[] }): Layer {
  switch (l.type) {
    case 'dense':
      return tfl.layers.dense({ name: l.name, ...inputShape, units: l.units, useBias: l.useBias, activation: l.activation, kernelInitializer: 'zeros' });
    case 'conv2d':
    case 'conv2dTranspose': {
      const args = {
        name: l.name,
        ...inputShape,
        filters: l.filters,
        kernelSize: l.kernelSize,
        strides: l.strides,
        padding: l.padding,
        useBias: l.useBias,
        activation: l.activation,
        kernelInitializer: 'zeros' as const,
      };
      return l.type === 'conv2d' ? tfl.layers.conv2d(args) : tfl.layers.conv2dTranspose(args);
    }
    case 'batchNorm':
      return tfl.layers.batchNormalization({ name: l.name, ...inputShape, momentum: l.momentum, epsilon: l.epsilon });
    case 'leakyReLU':
      return tfl.layers.leakyReLU({ name: l.name, ...inputShape, alpha: l.alpha });
    case 'reshape':
      return tfl.layers.reshape({ name: l.name, ...inputShape, targetShape: l.targetShape });
    case 'flatten':
      return tfl.layers.flatten({ name: l.name, ...inputShape });
  }
}

/** A Sequential with the plan's layers in order; the first takes the plan's input shape. */
export function buildSequential(plan: NetworkPlan): Sequential {
  const model = tfl.sequential({ name: plan.name });
  plan.layers.forEach((l, i) => model.add(layerOf(l, i === 0 ? { inputShape: plan.inputShape } : {})));
  return model;
}

/** The untrained G and D of a spec (zero weights; the trainer writes the initial values). Validates the spec. */
export function buildModel(spec: ModelSpec): { generator: Sequential; discriminator: Sequential } {
  const plans = networkPlans(spec);
  const generator = buildSequential(plans.generator);
  try {
    return { generator, discriminator: buildSequential(plans.discriminator) };
  } catch (e) {
    generator.dispose();
    throw e;
  }
}
