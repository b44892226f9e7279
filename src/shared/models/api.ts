/**
 * What an architecture is to distgan: a `ModelDefinition`, one object per
 * file (dcgan.ts, mlp.ts), listed in registry.ts. Everything that depends on
 * the model kind (resolving `--model`, validating a spec from the wire or a
 * checkpoint, building G and D, counting their parameters, rendering samples)
 * asks the registry for the spec's definition instead of switching on `kind`.
 *
 * A definition is plain data and pure functions, with no tfjs: its networks
 * are layer plans (layers.ts), which build.ts turns into tfjs-layers
 * Sequentials and layers.ts counts without tfjs. Both read the same plan, so
 * the parameter counts the coordinator sizes its buffers from cannot drift
 * from the networks the workers build.
 */
import type { NetworkPlan } from './layers.js';

/** Fields every spec has; a definition's spec type extends this with its own. */
export interface ModelSpecBase {
  /** The definition's `kind`; selects it in the registry. */
  kind: string;
  /** Size of z ~ N(0, I) fed to G, in floats (1..4096). */
  latentDim: number;
}

/** The `--width`, `--batch-norm` and `--latent-dim` options, defaults applied (spec.ts resolveModelSpec). */
export interface ResolvedOptions {
  /** Channel/unit multiplier, > 0 (default 1). */
  width: number;
  /** Batch normalisation in G, for architectures that have it (default true). */
  batchNorm: boolean;
  /** Size of z (default 100). */
  latentDim: number;
}

/**
 * How samples.ts draws G's output: `images` as a grid of [H, W, C] images
 * (64 of them), `points` as a scatter plot of 2-D points (at least 1000).
 */
export type SampleRendering = 'images' | 'points';

/**
 * One architecture. Every function is pure and tfjs-free; each may assume the
 * spec it is given has passed `validate` (spec.ts checks `keys` and
 * `latentDim` first, then calls it).
 */
export interface ModelDefinition<S extends ModelSpecBase = ModelSpecBase> {
  /** The spec's `kind` and the `--model` value; lower-case, never 'auto'. */
  readonly kind: S['kind'];
  /** What `--model auto` uses it for, in `--help` ("images", "points"). */
  readonly autoFor: string;
  /** The sample shapes it takes, for error messages ("[H, H, 1|3]", "[n]"). */
  readonly shapeHint: string;
  /** Every key of its spec, `kind` and `latentDim` included; no others are accepted. */
  readonly keys: readonly string[];
  /** How samples.ts renders G's output. */
  readonly rendering: SampleRendering;
  /** Whether `--model auto` may pick it for samples of this shape (the registry asks in order). */
  fits(sampleShape: readonly number[]): boolean;
  /**
   * The spec for a dataset's per-sample shape and the options. Throws a
   * ConfigError naming `--model <kind>` when the shape does not suit; the
   * result is validated by the caller.
   */
  resolve(sampleShape: readonly number[], opts: ResolvedOptions): S;
  /**
   * Throws a ConfigError naming the first invalid field of its own (keys and
   * latentDim are already checked). `spec` has exactly `keys`.
   */
  validate(spec: Readonly<Record<string, unknown>>): void;
  /** G's layer plan: input [latentDim], output one sample. */
  generator(spec: S): NetworkPlan;
  /** D's layer plan: input one sample (G's output shape), output [1], a logit. */
  discriminator(spec: S): NetworkPlan;
}
