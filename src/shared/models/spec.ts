/**
 * What network a run trains, as plain JSON-serialisable data. The spec is
 * written to config.json and checkpoints, sent in the join handshake, and
 * hashed (with the training options) into the model+config fingerprint, so
 * two processes holding equal specs build identical variable layouts.
 *
 * This module imports no tfjs: the coordinator validates and fingerprints
 * specs, and sizes its gradient buffers from `parameterCounts`, without ever
 * loading a compute backend. The tfjs builders (dcgan.ts, mlp.ts) take their
 * channel plan from here, so the counts cannot drift from the real models.
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../errors.js';

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
  /** Multiplier of every hidden channel count; 1 = the reference DCGAN of facts.md. */
  width: number;
  /** Batch normalisation after G's dense and hidden transposed convolutions (D never has BN). */
  batchNorm: boolean;
}

export interface MlpSpec {
  kind: 'mlp';
  /** Size of z ~ N(0, I). */
  latentDim: number;
  /** Units per hidden layer, G and D alike. */
  hidden: number;
  /** Number of hidden layers, G and D alike. */
  depth: number;
  /** Floats per sample (2 for points in the plane). */
  outputDim: number;
}

export type ModelSpec = DcganSpec | MlpSpec;

/** Hidden units of the MLP at width 1. */
export const MLP_BASE_HIDDEN = 128;
/** Hidden layers of the MLP (G and D each); a third layer trained no better on ring8 and cost 50% more. */
export const MLP_DEPTH = 2;
/** Default latent size when none is given. */
export const DEFAULT_LATENT_DIM = 100;

export interface ResolveOptions {
  /** Channel/unit multiplier, > 0 (default 1). */
  width?: number;
  /** BN in G for DCGANs (default true). */
  batchNorm?: boolean;
  /** Size of z (default 100). */
  latentDim?: number;
}

/**
 * Picks the network for a dataset's per-sample shape. `auto` chooses a DCGAN
 * for square images [H, H, 1|3] and an MLP for 1-D samples ([2] for points).
 */
export function resolveModelSpec(
  kind: 'auto' | 'dcgan' | 'mlp',
  sampleShape: readonly number[],
  opts: ResolveOptions = {},
): ModelSpec {
  const width = opts.width ?? 1;
  const latentDim = opts.latentDim ?? DEFAULT_LATENT_DIM;
  const chosen = kind === 'auto' ? (sampleShape.length === 3 ? 'dcgan' : sampleShape.length === 1 ? 'mlp' : undefined) : kind;
  if (chosen === undefined) {
    throw new ConfigError(`--model auto: no model for samples of shape [${sampleShape.join(', ')}] (need [H, H, 1|3] or [n])`);
  }
  let spec: ModelSpec;
  if (chosen === 'dcgan') {
    if (sampleShape.length !== 3) {
      throw new ConfigError(`--model dcgan needs image samples [H, H, C]; the dataset has shape [${sampleShape.join(', ')}]`);
    }
    const [h, w, c] = sampleShape as [number, number, number];
    if (h !== w) throw new ConfigError(`--model dcgan needs square images; the dataset's are ${h}×${w}`);
    spec = {
      kind: 'dcgan',
      resolution: h as DcganResolution,
      channels: c as 1 | 3,
      latentDim,
      width,
      batchNorm: opts.batchNorm ?? true,
    };
  } else if (chosen === 'mlp') {
    if (sampleShape.length !== 1) {
      throw new ConfigError(`--model mlp needs 1-D samples [n]; the dataset has shape [${sampleShape.join(', ')}]`);
    }
    spec = {
      kind: 'mlp',
      latentDim,
      hidden: Math.max(1, Math.round(MLP_BASE_HIDDEN * width)),
      depth: MLP_DEPTH,
      outputDim: sampleShape[0]!,
    };
  } else {
    throw new ConfigError(`--model: ${JSON.stringify(kind)} is not one of auto, dcgan, mlp`);
  }
  validateModelSpec(spec);
  return spec;
}

const posInt = (v: unknown, max: number): boolean => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max;

/** Throws a ConfigError naming the first invalid field; checks for unknown keys too. */
export function validateModelSpec(spec: unknown): asserts spec is ModelSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new ConfigError(`model spec: ${JSON.stringify(spec)} is not an object`);
  }
  const s = spec as Record<string, unknown>;
  const allowed =
    s.kind === 'dcgan'
      ? ['kind', 'resolution', 'channels', 'latentDim', 'width', 'batchNorm']
      : s.kind === 'mlp'
        ? ['kind', 'latentDim', 'hidden', 'depth', 'outputDim']
        : undefined;
  if (allowed === undefined) throw new ConfigError(`model spec kind: ${JSON.stringify(s.kind)} is not 'dcgan' or 'mlp'`);
  for (const key of Object.keys(s)) {
    if (!allowed.includes(key)) throw new ConfigError(`model spec: unknown key ${JSON.stringify(key)} for kind ${s.kind}`);
  }
  for (const key of allowed) {
    if (!(key in s)) throw new ConfigError(`model spec: missing ${key}`);
  }
  if (!posInt(s.latentDim, 4096)) throw new ConfigError(`model spec latentDim: ${JSON.stringify(s.latentDim)} is not an integer in [1, 4096]`);
  if (s.kind === 'dcgan') {
    if (!DCGAN_RESOLUTIONS.includes(s.resolution as DcganResolution)) {
      throw new ConfigError(`model spec resolution: ${JSON.stringify(s.resolution)} is not one of ${DCGAN_RESOLUTIONS.join(', ')} (pixels)`);
    }
    if (s.channels !== 1 && s.channels !== 3) throw new ConfigError(`model spec channels: ${JSON.stringify(s.channels)} is not 1 or 3`);
    if (typeof s.width !== 'number' || !Number.isFinite(s.width) || s.width <= 0 || s.width > 16) {
      throw new ConfigError(`model spec width: ${JSON.stringify(s.width)} is not a number in (0, 16]`);
    }
    if (typeof s.batchNorm !== 'boolean') throw new ConfigError(`model spec batchNorm: ${JSON.stringify(s.batchNorm)} is not a boolean`);
  } else {
    if (!posInt(s.hidden, 65536)) throw new ConfigError(`model spec hidden: ${JSON.stringify(s.hidden)} is not an integer in [1, 65536]`);
    if (!posInt(s.depth, 64)) throw new ConfigError(`model spec depth: ${JSON.stringify(s.depth)} is not an integer in [1, 64]`);
    if (!posInt(s.outputDim, 1 << 20)) throw new ConfigError(`model spec outputDim: ${JSON.stringify(s.outputDim)} is not a positive integer`);
  }
}

/** Per-sample shape the spec's generator produces and its discriminator reads. */
export function sampleShapeOf(spec: ModelSpec): number[] {
  return spec.kind === 'dcgan' ? [spec.resolution, spec.resolution, spec.channels] : [spec.outputDim];
}

/** Largest hidden channel count before width scaling; keeps 128 px models near DCGAN's size. */
const DCGAN_MAX_BASE_CHANNELS = 512;

/**
 * The DCGAN's shape plan, derived from the spec alone.
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

export interface ParameterCounts {
  /** Trainable floats of G (= length of a flat G gradient). */
  g: number;
  /** Trainable floats of D. */
  d: number;
  /** BN moving statistics (mean and variance) of G then D. */
  bnStats: number;
}

/** Sizes of the flat vectors exchanged on the wire, without building the networks. */
export function parameterCounts(spec: ModelSpec): ParameterCounts {
  validateModelSpec(spec);
  if (spec.kind === 'mlp') {
    const { latentDim: z, hidden: h, depth, outputDim: o } = spec;
    const g = z * h + h + (depth - 1) * (h * h + h) + h * o + o;
    const d = o * h + h + (depth - 1) * (h * h + h) + h + 1;
    return { g, d, bnStats: 0 };
  }
  const { start, gChannels, dChannels } = dcganPlan(spec);
  const k = 5 * 5;
  let g = 0;
  let bn = 0;
  const denseOut = start * start * gChannels[0]!;
  // With BN the layer before it has no bias (BN's beta replaces it).
  g += spec.latentDim * denseOut + (spec.batchNorm ? 2 * denseOut : denseOut);
  if (spec.batchNorm) bn += 2 * denseOut;
  for (let i = 1; i < gChannels.length; i++) {
    const cin = gChannels[i - 1]!;
    const cout = gChannels[i]!;
    const last = i === gChannels.length - 1;
    g += k * cin * cout + (spec.batchNorm && !last ? 2 * cout : cout);
    if (spec.batchNorm && !last) bn += 2 * cout;
  }
  let d = 0;
  let cin: number = spec.channels;
  for (const cout of dChannels) {
    d += k * cin * cout + cout;
    cin = cout;
  }
  d += start * start * cin + 1;
  return { g, d, bnStats: bn };
}

/**
 * JSON with object keys sorted at every level, so equal values serialise to
 * equal strings whatever order their keys were set in. Rejects what JSON
 * cannot carry faithfully (NaN, ±Infinity, functions, bigints, undefined in
 * arrays) rather than silently turning it into null.
 */
export function canonicalJson(value: unknown): string {
  const walk = (v: unknown, path: string): string => {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ConfigError(`fingerprint: ${path} is ${v}, which JSON cannot represent`);
      return JSON.stringify(v);
    }
    if (Array.isArray(v)) return `[${v.map((x, i) => walk(x, `${path}[${i}]`)).join(',')}]`;
    if (typeof v === 'object') {
      const entries = Object.keys(v as object)
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${walk((v as Record<string, unknown>)[k], `${path}.${k}`)}`);
      return `{${entries.join(',')}}`;
    }
    throw new ConfigError(`fingerprint: ${path} is a ${typeof v}, which JSON cannot represent`);
  };
  return walk(value, '$');
}

/** sha256 (hex) of the canonical JSON of `value`; used as the model+config fingerprint. */
export function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}
