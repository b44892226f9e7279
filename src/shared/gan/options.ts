/**
 * The optimisation options of a GAN run. They are part of the model+config
 * fingerprint, so every worker and the coordinator's Adam mirror must hold
 * the same values.
 */
import { ConfigError } from '../errors.js';

export interface GanOptions {
  /** Adam learning rate of G and D, > 0. Default 2e-4. */
  lr: number;
  /** Adam β1 (first-moment decay), in [0, 1). Default 0.5 (DCGAN). */
  beta1: number;
  /** Adam β2 (second-moment decay), in [0, 1). Default 0.999. */
  beta2: number;
  /** Adam ε added to √v̂, > 0. Default 1e-8. */
  epsilon: number;
  /** λ of the λ·H[D] term added to the G loss (H: Bernoulli entropy of D on fakes, nats), ≥ 0. Default 0 = off. */
  entropyWeight: number;
  /** One-sided label smoothing s: D's real target is 1 − s, in [0, 1). Default 0 = off. */
  labelSmoothing: number;
  /** σ of Gaussian noise added to every D input, real and fake, in data units (images span [-1, 1]), ≥ 0. Default 0 = off. */
  instanceNoise: number;
  /** Seed of initial weights and per-sample noise, an integer in [0, 2^53). Default 1 (the CLI's default). */
  seed: number;
}

export const DEFAULT_GAN_OPTIONS: Readonly<GanOptions> = Object.freeze({
  lr: 2e-4,
  beta1: 0.5,
  beta2: 0.999,
  epsilon: 1e-8,
  entropyWeight: 0,
  labelSmoothing: 0,
  instanceNoise: 0,
  seed: 1,
});

type Check = (v: number) => boolean;
const RULES: Record<keyof GanOptions, [Check, string]> = {
  lr: [(v) => v > 0, '> 0'],
  beta1: [(v) => v >= 0 && v < 1, 'in [0, 1)'],
  beta2: [(v) => v >= 0 && v < 1, 'in [0, 1)'],
  epsilon: [(v) => v > 0, '> 0'],
  entropyWeight: [(v) => v >= 0, '≥ 0'],
  labelSmoothing: [(v) => v >= 0 && v < 1, 'in [0, 1)'],
  instanceNoise: [(v) => v >= 0, '≥ 0'],
  seed: [(v) => Number.isSafeInteger(v) && v >= 0, 'an integer in [0, 2^53)'],
};

/** Throws a ConfigError naming the first bad or unknown field. */
export function validateGanOptions(options: unknown): asserts options is GanOptions {
  if (typeof options !== 'object' || options === null) throw new ConfigError(`GAN options: ${JSON.stringify(options)} is not an object`);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(key in RULES)) throw new ConfigError(`GAN options: unknown key ${JSON.stringify(key)}`);
  }
  for (const [key, [ok, want]] of Object.entries(RULES)) {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      throw new ConfigError(`GAN option ${key}: ${JSON.stringify(v)} is not ${want}`);
    }
  }
}

/** Fills in defaults for missing fields, validates, and returns a frozen object. */
export function resolveGanOptions(partial: Partial<GanOptions> = {}): Readonly<GanOptions> {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  const options = { ...DEFAULT_GAN_OPTIONS, ...defined };
  validateGanOptions(options);
  return Object.freeze(options);
}
