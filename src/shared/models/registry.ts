/**
 * The model registry: every architecture distgan can train, by `kind`, as
 * data (one ModelDefinition per file, api.ts), the way compute/kernels/
 * register.ts lists kernels. `--model`, spec validation, building G and D,
 * parameter counts and sample rendering all look the spec's kind up here.
 *
 * Adding an architecture: write `models/<kind>.ts` exporting its definition
 * and append it to BUILTIN_MODELS. Its spec type then joins `ModelSpec` and
 * its kind joins `--model` by itself. `registerModel` adds one at run time
 * (tests, embedders); its spec is then outside the `ModelSpec` type, which
 * generic code (trainer, run, samples) does not mind: it only reads `kind`
 * and `latentDim` and asks the definition for the rest.
 *
 * This module and the definitions load no tfjs, so config.ts (which lists the
 * kinds for `--model`) and the coordinator stay free of it.
 */
import { ConfigError } from '../errors.js';
import type { ModelDefinition, ModelSpecBase } from './api.js';
import { dcgan } from './dcgan.js';
import { mlp } from './mlp.js';

/**
 * Built-in architectures, in the order `--model auto` tries them (the first
 * whose `fits` accepts the sample shape wins).
 */
export const BUILTIN_MODELS = [dcgan, mlp] as const;

type SpecOf<D> = D extends ModelDefinition<infer S> ? S : never;

/** The spec of any built-in architecture; narrow it on `kind`. */
export type ModelSpec = SpecOf<(typeof BUILTIN_MODELS)[number]>;

/** Every registered definition by kind, in registration order (a Map keeps it). */
const registry = new Map<string, ModelDefinition>(BUILTIN_MODELS.map((d): [string, ModelDefinition] => [d.kind, d]));

/**
 * Adds an architecture after the built-ins (so `auto` prefers them). Throws if
 * the kind is taken, is 'auto', or is not lower-case letters, digits and '-'.
 */
export function registerModel<S extends ModelSpecBase>(definition: ModelDefinition<S>): void {
  const { kind } = definition;
  if (!/^[a-z][a-z0-9-]*$/.test(kind) || kind === 'auto') {
    throw new Error(`registerModel: kind ${JSON.stringify(kind)} must be lower-case letters, digits and '-', and not 'auto'`);
  }
  if (registry.has(kind)) throw new Error(`registerModel: kind ${JSON.stringify(kind)} is already registered`);
  if (!definition.keys.includes('kind') || !definition.keys.includes('latentDim')) {
    throw new Error(`registerModel: ${kind}'s keys must include 'kind' and 'latentDim'`);
  }
  registry.set(kind, definition);
}

/** Removes an architecture added with registerModel (tests). Built-ins cannot be removed. */
export function unregisterModel(kind: string): void {
  if (BUILTIN_MODELS.some((d) => d.kind === kind)) throw new Error(`unregisterModel: ${kind} is built in`);
  registry.delete(kind);
}

/** The registered kinds, in registration order (built-ins first). */
export function modelKinds(): string[] {
  return [...registry.keys()];
}

/** Every registered definition, in registration order. */
export function modelDefinitions(): ModelDefinition[] {
  return [...registry.values()];
}

/** The definition of `kind`, or undefined. */
export function findModel(kind: unknown): ModelDefinition | undefined {
  return typeof kind === 'string' ? registry.get(kind) : undefined;
}

/** The definition of `kind`; a ConfigError listing the registered kinds if there is none. */
export function modelDefinition(kind: unknown, what = 'model spec kind'): ModelDefinition {
  const definition = findModel(kind);
  if (definition === undefined) {
    throw new ConfigError(`${what}: ${JSON.stringify(kind)} is not a registered model (${modelKinds().join(', ')})`);
  }
  return definition;
}

/** What `--model auto` picks for a sample shape: the first registered definition that fits it. */
export function modelForShape(sampleShape: readonly number[]): ModelDefinition | undefined {
  return modelDefinitions().find((d) => d.fits(sampleShape));
}
