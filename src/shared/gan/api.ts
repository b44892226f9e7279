/**
 * The contract between the distributed core and the compute engine. A
 * worker drives one `GanTrainer` through the phases of a synchronous
 * data-parallel GAN step (phases.ts; today D then G):
 *
 *   D phase: computeGradients('d', slice) → coordinator averages → applyGradients('d', avg)
 *   G phase: computeGradients('g', slice) → coordinator averages → applyGradients('g', avg)
 *
 * The coordinator holds one too, as its mirror: it applies the averaged
 * gradients exactly as the workers do, and never computes gradients itself.
 *
 * Gradients, weights and optimizer state cross the wire as flat Float32Arrays
 * whose layout is the positional order of the network's variables (never tfjs
 * variable names, which come from a global counter and differ per process).
 */

import type { Network } from './phases.js';

/** What one worker computes on for one phase of one step. */
export interface PhaseInput {
  /** Global step number (0-based), used to derive per-sample noise. */
  readonly step: number;
  /**
   * Global positions of this worker's samples inside the step's global batch
   * (e.g. 32..63 for rank 1 of 2 at B=64). Noise for a sample depends only on
   * (seed, step, position), so slicing does not change the maths.
   */
  readonly positions: Int32Array;
  /** Global batch size B; the worker's gradient is scaled by positions.length / B. */
  readonly globalBatch: number;
  /** Real samples for the D phase (positions.length × sampleSize), in [-1, 1]. Absent for G. */
  readonly real?: Float32Array;
}

/** Per-step statistics, computed from the same forward passes as the gradients. */
export interface PhaseStats {
  /** D loss −½[E log D(x) + E log(1 − D(G(z)))] on this slice (D phase only). */
  dLoss?: number;
  /** Non-saturating G loss −E log D(G(z)) (+ λ·H[D]) on this slice (G phase only). */
  gLoss?: number;
  /** Share of real samples with D(x) > 0.5 (D phase only). */
  dAccuracyReal?: number;
  /** Share of fakes with D(G(z)) < 0.5 (D phase only). */
  dAccuracyFake?: number;
}

export interface PhaseResult {
  /**
   * Flat gradient of this phase's network, already multiplied by
   * positions.length / globalBatch, so that the coordinator's SUM over ranks
   * equals the full-batch mean gradient exactly.
   */
  readonly gradients: Float32Array;
  /**
   * Non-trainable state the phase changed (BN moving statistics), flat, or an
   * empty array. The coordinator averages it with the same weights.
   */
  readonly aux: Float32Array;
  readonly stats: PhaseStats;
  /** Wall seconds spent computing (forward + backward + readback). */
  readonly computeSeconds: number;
}

/** Everything needed to continue a run bit-exactly. */
export interface TrainerState {
  /** Number of optimizer steps applied so far. */
  step: number;
  gWeights: Float32Array;
  dWeights: Float32Array;
  /** BN moving statistics of G then D, flat (empty when the model has no BN). */
  bnStats: Float32Array;
  /** Adam first and second moments, flat, same layout as the weights. */
  gAdamM: Float32Array;
  gAdamV: Float32Array;
  dAdamM: Float32Array;
  dAdamV: Float32Array;
}

/** The arrays of a TrainerState, in the order they travel (Init message) and are stored (checkpoints). */
export const TRAINER_STATE_ARRAYS = ['gWeights', 'dWeights', 'bnStats', 'gAdamM', 'gAdamV', 'dAdamM', 'dAdamV'] as const;
export type TrainerStateArrays = Omit<TrainerState, 'step'>;

export interface GanTrainer {
  /** Number of floats in a flat G/D gradient (= trainable parameters). */
  readonly gParamCount: number;
  readonly dParamCount: number;
  /** Floats in the aux (BN statistics) vector. */
  readonly auxCount: number;

  computeDGradients(input: PhaseInput): Promise<PhaseResult>;
  /** Applies an averaged flat D gradient with Adam. `aux` (if non-empty) overwrites BN statistics. */
  applyDGradients(gradients: Float32Array, aux: Float32Array): void;
  computeGGradients(input: PhaseInput): Promise<PhaseResult>;
  applyGGradients(gradients: Float32Array, aux: Float32Array): void;
  /** The gradient of any phase of the phase table (phases.ts), by its name: D's and G's are the two above. */
  computeGradients(phase: string, input: PhaseInput): Promise<PhaseResult>;
  /** applyDGradients or applyGGradients, by network. */
  applyGradients(network: Network, gradients: Float32Array, aux: Float32Array): void;
  /**
   * Throws exactly what applyGradients would throw for these arguments,
   * changing nothing; lets a caller apply a step's updates all or nothing.
   */
  checkUpdate(network: Network, gradients: Float32Array, aux: Float32Array): void;
  /**
   * An update that was discarded on every replica (--on-bad-gradient
   * skip-step): advances that network's optimizer step count, changing no
   * weight or moment, so every optimizer stays at the training step.
   */
  skipUpdate(network: Network): void;

  getState(): TrainerState;
  setState(state: TrainerState): void;

  /** A cheap order-sensitive checksum of all weights and BN statistics, for replica checks. */
  checksum(): string;

  /** Runs G in inference mode on the given latents (n × latentDim); returns n × sampleSize in [-1, 1]. */
  generate(latents: Float32Array, n: number): Float32Array;

  /** Frees every tensor the trainer owns. */
  dispose(): void;
}
