/**
 * The DCGAN family: square images of 28, 32, 64 or 128 px, grey or RGB.
 * One ModelDefinition (api.ts), registered in registry.ts.
 *
 * Generator (28 px, width 1 = facts.md's reference model):
 *   dense z→7·7·128 (no bias), BN, leakyReLU, reshape 7×7×128,
 *   convT 64 5×5 s2 (no bias), BN, leakyReLU, convT C 5×5 s2 (+bias), tanh.
 * Discriminator: conv 64 5×5 s2, leakyReLU, conv 128 5×5 s2, leakyReLU,
 *   flatten, dense 1 (a logit: the sigmoid lives in the loss, for stability).
 * 32/64/128 px start at 4×4 and add one stride-2 stage per doubling.
 *
 * A layer followed by BN has no bias (BN's β replaces it); without BN every
 * layer has one. D never has BN.
 */
import { ConfigError } from '../errors.js';
import type { ModelDefinition, ResolvedOptions } from './api.js';
import { fieldError, shapeText } from './fields.js';
import type { LayerPlan, NetworkPlan } from './layers.js';

/** Image resolutions the DCGAN family supports (square, pixels). */
export const DCGAN_RESOLUTIONS = [28, 32, 64, 128] as const;
export type DcganResolution = (typeof DCGAN_RESOLUTIONS)[number];

export interface DcganSpec {
  kind: 'dcgan';
  /** Image side in pixels: 28 (MNIST, 7×7 start) or 32/64/128 (4×4 start). */
  resolution: DcganResolution;
  /** 1 = grey, 3 = RGB. */
  channels: 1 | 3;
  /** Size of z ~ N(0, I). Default 100. */
  latentDim: number;
  /** Multiplier of every hidden channel count, in (0, 16]; 1 = the reference DCGAN of facts.md. */
  width: number;
  /** Batch normalisation after G's dense and hidden transposed convolutions (D never has BN). */
  batchNorm: boolean;
}

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
/** Largest hidden channel count before width scaling; keeps 128 px models near DCGAN's size. */
const DCGAN_MAX_BASE_CHANNELS = 512;

/**
 * The DCGAN's channel plan, derived from the spec alone.
 * G: dense z → start²·gChannels[0], reshape, then one 5×5 stride-2 transposed
 * conv per entry of gChannels[1..] (doubling the side), the last producing the
 * image channels. D mirrors it: one 5×5 stride-2 conv per dChannels entry
 * (halving the side down to `start`), flatten, dense → 1 logit.
 * 28 px: start 7, G 128→64→C, D 64→128 (facts.md's model at width 1).
 * 32/64/128 px: start 4, hidden channels 64·2^k (capped at 512) toward the 4×4 end.
 */
export interface DcganPlan {
  /** Side of G's first feature map and of D's last, pixels. */
  start: number;
  /** G channels after the dense layer, then after each transposed conv (last = image channels). */
  gChannels: number[];
  /** D channels after each conv (first = nearest the image). */
  dChannels: number[];
}

export function dcganPlan(spec: DcganSpec): DcganPlan {
  const start = spec.resolution === 28 ? 7 : 4;
  const ups = Math.round(Math.log2(spec.resolution / start));
  const scaled = (base: number): number => Math.max(1, Math.round(base * spec.width));
  // Hidden channel k (0 = nearest the image) has 64·2^k base channels.
  const hidden: number[] = [];
  for (let k = 0; k < ups; k++) hidden.push(scaled(Math.min(DCGAN_MAX_BASE_CHANNELS, 64 * 2 ** k)));
  return { start, gChannels: [...hidden].reverse().concat([spec.channels]), dChannels: hidden };
}

const conv = (type: 'conv2d' | 'conv2dTranspose', name: string, filters: number, useBias: boolean, activation: 'linear' | 'tanh'): LayerPlan => ({
  type,
  name,
  filters,
  kernelSize: KERNEL,
  strides: 2,
  padding: 'same',
  useBias,
  activation,
});

function generator(spec: DcganSpec): NetworkPlan {
  const { start, gChannels } = dcganPlan(spec);
  const bn = spec.batchNorm;
  const layers: LayerPlan[] = [{ type: 'dense', name: 'g_dense', units: start * start * gChannels[0]!, useBias: !bn, activation: 'linear' }];
  if (bn) layers.push({ type: 'batchNorm', name: 'g_bn0', momentum: BN_MOMENTUM, epsilon: BN_EPSILON });
  layers.push({ type: 'leakyReLU', name: 'g_act0', alpha: LEAKY_ALPHA });
  layers.push({ type: 'reshape', name: 'g_reshape', targetShape: [start, start, gChannels[0]!] });
  for (let i = 1; i < gChannels.length; i++) {
    const last = i === gChannels.length - 1;
    layers.push(conv('conv2dTranspose', `g_convt${i}`, gChannels[i]!, last || !bn, last ? 'tanh' : 'linear'));
    if (!last) {
      if (bn) layers.push({ type: 'batchNorm', name: `g_bn${i}`, momentum: BN_MOMENTUM, epsilon: BN_EPSILON });
      layers.push({ type: 'leakyReLU', name: `g_act${i}`, alpha: LEAKY_ALPHA });
    }
  }
  return { name: 'generator', inputShape: [spec.latentDim], layers };
}

function discriminator(spec: DcganSpec): NetworkPlan {
  const { dChannels } = dcganPlan(spec);
  const layers: LayerPlan[] = [];
  dChannels.forEach((filters, i) => {
    layers.push(conv('conv2d', `d_conv${i}`, filters, true, 'linear'));
    layers.push({ type: 'leakyReLU', name: `d_act${i}`, alpha: LEAKY_ALPHA });
  });
  layers.push({ type: 'flatten', name: 'd_flatten' });
  layers.push({ type: 'dense', name: 'd_logit', units: 1, useBias: true, activation: 'linear' });
  return { name: 'discriminator', inputShape: [spec.resolution, spec.resolution, spec.channels], layers };
}

function resolve(sampleShape: readonly number[], opts: ResolvedOptions): DcganSpec {
  if (sampleShape.length !== 3) {
    throw new ConfigError(`--model dcgan needs image samples [H, H, C]; the dataset has shape ${shapeText(sampleShape)}`);
  }
  const [h, w, c] = sampleShape as [number, number, number];
  if (h !== w) throw new ConfigError(`--model dcgan needs square images; the dataset's are ${h}×${w}`);
  // Resolution and channels are checked by validate, which names the bad value.
  return { kind: 'dcgan', resolution: h as DcganResolution, channels: c as 1 | 3, latentDim: opts.latentDim, width: opts.width, batchNorm: opts.batchNorm };
}

function validate(s: Readonly<Record<string, unknown>>): void {
  if (!DCGAN_RESOLUTIONS.includes(s.resolution as DcganResolution)) {
    throw fieldError('resolution', s.resolution, `one of ${DCGAN_RESOLUTIONS.join(', ')} (pixels)`);
  }
  if (s.channels !== 1 && s.channels !== 3) throw fieldError('channels', s.channels, '1 or 3');
  if (typeof s.width !== 'number' || !Number.isFinite(s.width) || s.width <= 0 || s.width > 16) {
    throw fieldError('width', s.width, 'a number in (0, 16]');
  }
  if (typeof s.batchNorm !== 'boolean') throw fieldError('batchNorm', s.batchNorm, 'a boolean');
}

export const dcgan: ModelDefinition<DcganSpec> = {
  kind: 'dcgan',
  autoFor: 'images',
  shapeHint: '[H, H, 1|3]',
  keys: ['kind', 'resolution', 'channels', 'latentDim', 'width', 'batchNorm'],
  rendering: 'images',
  fits: (sampleShape) => sampleShape.length === 3,
  resolve,
  validate,
  generator,
  discriminator,
};
