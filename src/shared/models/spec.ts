/**
 * What network a run trains, as plain JSON-serialisable data. The spec is
 * written to config.json and checkpoints, sent in the join handshake, and
 * hashed (with the training options) into the model+config fingerprint, so
 * two processes holding equal specs build identical variable layouts.
 *
 * The architecture-specific parts (which fields a spec has, how it is chosen
 * from a sample shape, its layer plans) live in one ModelDefinition per
 * architecture, looked up by `kind` in registry.ts; this module is the
 * kind-independent front: resolve, validate, plan, count, fingerprint.
 *
 * It imports no tfjs: the coordinator validates and fingerprints specs, and
 * sizes its gradient buffers from `parameterCounts`, without ever loading a
 * compute backend. The counts are read off the same layer plans build.ts
 * builds the networks from, so they cannot drift from the real models.
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../errors.js';
import type { ModelSpecBase } from './api.js';
import { fieldError, isIntIn, shapeText } from './fields.js';
import { countPlan, type NetworkPlan } from './layers.js';
import { findModel, modelDefinition, modelDefinitions, modelForShape, modelKinds, type ModelSpec } from './registry.js';

export type { ModelSpec } from './registry.js';
// Architecture types and constants, re-exported for the modules that import them from here.
export { DCGAN_RESOLUTIONS, dcganPlan, type DcganPlan, type DcganResolution, type DcganSpec } from './dcgan.js';
export { MLP_BASE_HIDDEN, MLP_DEPTH, type MlpSpec } from './mlp.js';

/** Default latent size when none is given. */
export const DEFAULT_LATENT_DIM = 100;
/** Largest latent size a spec may have. */
const MAX_LATENT_DIM = 4096;

export interface ResolveOptions {
  /** Channel/unit multiplier, > 0 (default 1). */
  width?: number;
  /** BN in G, for architectures that have it (default true). */
  batchNorm?: boolean;
  /** Size of z (default 100). */
  latentDim?: number;
}

/**
 * Picks the network for a dataset's per-sample shape. `kind` is 'auto' or a
 * registered kind; `auto` takes the first registered definition that fits
 * the shape (built-ins: a DCGAN for square images [H, H, 1|3], an MLP for
 * 1-D samples such as [2] points).
 */
export function resolveModelSpec(kind: string, sampleShape: readonly number[], opts: ResolveOptions = {}): ModelSpec {
  let definition;
  if (kind === 'auto') {
    definition = modelForShape(sampleShape);
    if (definition === undefined) {
      const hints = modelDefinitions().map((d) => d.shapeHint).join(' or ');
      throw new ConfigError(`--model auto: no model for samples of shape ${shapeText(sampleShape)} (need ${hints})`);
    }
  } else {
    definition = findModel(kind);
    if (definition === undefined) throw new ConfigError(`--model: ${JSON.stringify(kind)} is not one of ${['auto', ...modelKinds()].join(', ')}`);
  }
  const spec = definition.resolve(sampleShape, {
    width: opts.width ?? 1,
    batchNorm: opts.batchNorm ?? true,
    latentDim: opts.latentDim ?? DEFAULT_LATENT_DIM,
  });
  validateModelSpec(spec);
  return spec;
}

/**
 * Throws a ConfigError naming the first invalid field: an unknown kind, an
 * unknown or missing key, latentDim, then the definition's own fields.
 */
export function validateModelSpec(spec: unknown): asserts spec is ModelSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new ConfigError(`model spec: ${JSON.stringify(spec)} is not an object`);
  }
  const s = spec as Record<string, unknown>;
  const definition = modelDefinition(s.kind);
  for (const key of Object.keys(s)) {
    if (!definition.keys.includes(key)) throw new ConfigError(`model spec: unknown key ${JSON.stringify(key)} for kind ${definition.kind}`);
  }
  for (const key of definition.keys) {
    if (!(key in s)) throw new ConfigError(`model spec: missing ${key}`);
  }
  if (!isIntIn(s.latentDim, 1, MAX_LATENT_DIM)) throw fieldError('latentDim', s.latentDim, `an integer in [1, ${MAX_LATENT_DIM}]`);
  definition.validate(s);
}

/**
 * G's and D's layer plans (layers.ts) for a spec, validated. Throws a plain
 * Error (a definition bug) if D does not read what G produces.
 */
export function networkPlans(spec: ModelSpecBase): { generator: NetworkPlan; discriminator: NetworkPlan } {
  validateModelSpec(spec);
  const definition = modelDefinition(spec.kind);
  const generator = definition.generator(spec);
  const discriminator = definition.discriminator(spec);
  const produced = countPlan(generator).outputShape;
  if (shapeText(produced) !== shapeText(discriminator.inputShape)) {
    throw new Error(`model ${spec.kind}: G makes samples ${shapeText(produced)} but D reads ${shapeText(discriminator.inputShape)}`);
  }
  if (shapeText(generator.inputShape) !== shapeText([spec.latentDim])) {
    throw new Error(`model ${spec.kind}: G reads ${shapeText(generator.inputShape)}, not [latentDim] = [${spec.latentDim}]`);
  }
  return { generator, discriminator };
}

/** Per-sample shape the spec's generator produces and its discriminator reads. */
export function sampleShapeOf(spec: ModelSpecBase): number[] {
  return [...networkPlans(spec).discriminator.inputShape];
}

export interface ParameterCounts {
  /** Trainable floats of G (= length of a flat G gradient). */
  g: number;
  /** Trainable floats of D. */
  d: number;
  /** BN moving statistics (mean and variance) of G then D. */
  bnStats: number;
}

/** Sizes of the flat vectors exchanged on the wire, read off the layer plans without building the networks. */
export function parameterCounts(spec: ModelSpecBase): ParameterCounts {
  const plans = networkPlans(spec);
  const g = countPlan(plans.generator);
  const d = countPlan(plans.discriminator);
  return { g: g.trainable, d: d.trainable, bnStats: g.state + d.state };
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
