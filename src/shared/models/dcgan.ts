/**
 * DCGAN generator and discriminator as tfjs-layers Sequential models, built
 * from a DcganSpec through the shape plan in spec.ts.
 *
 * Generator (28 px, width 1 = facts.md's reference model):
 *   dense z→7·7·128 (no bias), BN, leakyReLU, reshape 7×7×128,
 *   convT 64 5×5 s2 (no bias), BN, leakyReLU, convT C 5×5 s2 (+bias), tanh.
 * Discriminator: conv 64 5×5 s2, leakyReLU, conv 128 5×5 s2, leakyReLU,
 *   flatten, dense 1 (a logit: the sigmoid lives in the loss, for stability).
 * 32/64/128 px start at 4×4 and add one stride-2 stage per doubling.
 *
 * A layer followed by BN has no bias (BN's β replaces it); without BN every
 * layer has one. Initial values come from variables.ts (seeded, positional),
 * so the tfjs initialisers are set to zeros and never matter.
 */
import { tfl } from '../compute/tf.js';
import { dcganPlan, type DcganSpec } from './spec.js';

/** Negative slope of every leakyReLU (DCGAN paper's 0.2; tfjs's default would be 0.3). */
export const LEAKY_ALPHA = 0.2;
/** Kernel side of every (transposed) convolution, pixels. */
export const KERNEL = 5;
/**
 * BN momentum of the moving statistics: 0.9, i.e. PyTorch's momentum 0.1 that the
 * reference DCGAN uses. Keras's 0.99 leaves inference-mode samples grey for
 * hundreds of steps while the moving variance catches up.
 */
export const BN_MOMENTUM = 0.9;
/** BN variance epsilon (tfjs/Keras default). */
export const BN_EPSILON = 1e-3;

type Sequential = ReturnType<typeof tfl.sequential>;

export function buildDcganGenerator(spec: DcganSpec): Sequential {
  const { start, gChannels } = dcganPlan(spec);
  const bn = spec.batchNorm;
  const model = tfl.sequential({ name: 'generator' });
  model.add(
    tfl.layers.dense({
      name: 'g_dense',
      inputShape: [spec.latentDim],
      units: start * start * gChannels[0]!,
      useBias: !bn,
      kernelInitializer: 'zeros',
    }),
  );
  if (bn) model.add(tfl.layers.batchNormalization({ name: 'g_bn0', momentum: BN_MOMENTUM, epsilon: BN_EPSILON }));
  model.add(tfl.layers.leakyReLU({ name: 'g_act0', alpha: LEAKY_ALPHA }));
  model.add(tfl.layers.reshape({ name: 'g_reshape', targetShape: [start, start, gChannels[0]!] }));
  for (let i = 1; i < gChannels.length; i++) {
    const last = i === gChannels.length - 1;
    model.add(
      tfl.layers.conv2dTranspose({
        name: `g_convt${i}`,
        filters: gChannels[i]!,
        kernelSize: KERNEL,
        strides: 2,
        padding: 'same',
        useBias: last || !bn,
        activation: last ? 'tanh' : 'linear',
        kernelInitializer: 'zeros',
      }),
    );
    if (!last) {
      if (bn) model.add(tfl.layers.batchNormalization({ name: `g_bn${i}`, momentum: BN_MOMENTUM, epsilon: BN_EPSILON }));
      model.add(tfl.layers.leakyReLU({ name: `g_act${i}`, alpha: LEAKY_ALPHA }));
    }
  }
  return model;
}

export function buildDcganDiscriminator(spec: DcganSpec): Sequential {
  const { dChannels } = dcganPlan(spec);
  const model = tfl.sequential({ name: 'discriminator' });
  dChannels.forEach((filters, i) => {
    model.add(
      tfl.layers.conv2d({
        name: `d_conv${i}`,
        ...(i === 0 ? { inputShape: [spec.resolution, spec.resolution, spec.channels] } : {}),
        filters,
        kernelSize: KERNEL,
        strides: 2,
        padding: 'same',
        kernelInitializer: 'zeros',
      }),
    );
    model.add(tfl.layers.leakyReLU({ name: `d_act${i}`, alpha: LEAKY_ALPHA }));
  });
  model.add(tfl.layers.flatten({ name: 'd_flatten' }));
  model.add(tfl.layers.dense({ name: 'd_logit', units: 1, kernelInitializer: 'zeros' }));
  return model;
}
