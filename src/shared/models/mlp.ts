/**
 * MLP generator and discriminator for low-dimensional samples (2-D points of
 * the synthetic mixtures). G: `depth` dense+leakyReLU layers of `hidden`
 * units, then dense → outputDim with tanh, so samples stay in [-1, 1] as the
 * Dataset contract promises. D: the same trunk on the sample, then dense → 1
 * logit. No BN: the mixtures train fine without it, and it keeps the MLP an
 * exact match for sliced (multi-worker) batches.
 */
import { tfl } from '../compute/tf.js';
import { LEAKY_ALPHA } from './dcgan.js';
import type { MlpSpec } from './spec.js';

type Sequential = ReturnType<typeof tfl.sequential>;

function trunk(model: Sequential, prefix: 'g' | 'd', inputDim: number, spec: MlpSpec): void {
  for (let i = 0; i < spec.depth; i++) {
    model.add(
      tfl.layers.dense({
        name: `${prefix}_dense${i}`,
        ...(i === 0 ? { inputShape: [inputDim] } : {}),
        units: spec.hidden,
        kernelInitializer: 'zeros',
      }),
    );
    model.add(tfl.layers.leakyReLU({ name: `${prefix}_act${i}`, alpha: LEAKY_ALPHA }));
  }
}

export function buildMlpGenerator(spec: MlpSpec): Sequential {
  const model = tfl.sequential({ name: 'generator' });
  trunk(model, 'g', spec.latentDim, spec);
  model.add(tfl.layers.dense({ name: 'g_out', units: spec.outputDim, activation: 'tanh', kernelInitializer: 'zeros' }));
  return model;
}

export function buildMlpDiscriminator(spec: MlpSpec): Sequential {
  const model = tfl.sequential({ name: 'discriminator' });
  trunk(model, 'd', spec.outputDim, spec);
  model.add(tfl.layers.dense({ name: 'd_logit', units: 1, kernelInitializer: 'zeros' }));
  return model;
}
