/**
 * The tfjs implementation of GanTrainer: one process's replica of G and D.
 *
 * Authoritative state lives in JavaScript: flat G/D weights, BN moving
 * statistics and the two Adam optimisers (adam.ts). tfjs only computes; after
 * every update the flat weights are written into the tf variables. That keeps
 * every replica (and the coordinator's mirror) bit-identical whatever the
 * backend, and makes getState/setState exact.
 *
 * Compute calls are pure functions of the state and the input: BN moving
 * statistics that tfjs-layers updates during a training-mode forward pass are
 * read back as `aux` and then restored, so a retried request returns the same
 * result and only apply*Gradients changes the replica.
 *
 * Noise is counter-based (rng.ts), addressed by (seed, stream, step, global
 * position), so a slice of a batch draws exactly what a whole batch would:
 *   D phase latent   normalRows(seed, DPhaseLatent, step, positions)
 *   G phase latent   normalRows(seed, GPhaseLatent, step, positions)
 *   instance noise   normalRows(seed, InstanceNoiseReal|InstanceNoiseFake, step, positions)
 *                    (G phase: Rng(seed, InstanceNoiseFake, step, position, 1))
 */
import { createHash } from 'node:crypto';
import { tf, tfl } from '../compute/tf.js';
import { ConfigError, CheckpointError, NumericError, ProtocolError } from '../errors.js';
import { Rng, Stream, normalRows } from '../rng.js';
import { buildModel } from '../models/build.js';
import { applyUnfused } from '../models/forward.js';
import { parameterCounts, sampleShapeOf, validateModelSpec, type ModelSpec } from '../models/spec.js';
import { NetworkId, flatSize, initialValues, networkVariables, writeFlat, type NetworkVariables, type VariableInfo } from '../models/variables.js';
import { Adam } from './adam.js';
import type { GanTrainer, PhaseInput, PhaseResult, TrainerState } from './api.js';
import type { Network } from './phases.js';
import { discriminatorAccuracy, discriminatorLoss, generatorLoss } from './losses.js';
import { validateGanOptions, type GanOptions } from './options.js';

type Sequential = ReturnType<typeof tfl.sequential>;

/**
 * Builds the untrained G and D of a spec from its registered definition's
 * layer plans (models/registry.ts, models/build.ts); zero weights, which the
 * trainer overwrites. Validates the spec.
 */
export function buildNetworks(spec: ModelSpec): { generator: Sequential; discriminator: Sequential } {
  return buildModel(spec);
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** How a phase's gradient is computed: its loss, on this trainer, for one worker's slice. */
export type PhaseLoss = (trainer: TfGanTrainer, input: PhaseInput) => Promise<PhaseResult>;

/**
 * The loss of every phase in the phase table (shared/gan/phases.ts), by
 * phase name. D's and G's are the trainer's own; another phase registers
 * its loss here (registerPhaseLoss) beside its table entry.
 */
const PHASE_LOSSES = new Map<string, PhaseLoss>([
  ['d', (t, input) => t.computeDGradients(input)],
  ['g', (t, input) => t.computeGGradients(input)],
]);

/** Registers the loss of a phase; returns a function that removes it again (tests). */
export function registerPhaseLoss(phase: string, loss: PhaseLoss): () => void {
  if (PHASE_LOSSES.has(phase)) throw new RangeError(`phase ${phase} already has a loss`);
  PHASE_LOSSES.set(phase, loss);
  return () => {
    PHASE_LOSSES.delete(phase);
  };
}

export class TfGanTrainer implements GanTrainer {
  readonly gParamCount: number;
  readonly dParamCount: number;
  readonly auxCount: number;
  readonly latentDim: number;
  readonly sampleShape: readonly number[];
  /** Floats per sample. */
  readonly sampleSize: number;
  /** The tfjs generator; its variables always hold the current weights (used by export). */
  readonly generator: Sequential;
  readonly discriminator: Sequential;

  /** Positional layout of the flat vectors: G and D trainable variables, then BN state (G then D). */
  readonly layout: { readonly g: readonly VariableInfo[]; readonly d: readonly VariableInfo[]; readonly bn: readonly VariableInfo[] };

  private readonly g: NetworkVariables;
  private readonly d: NetworkVariables;
  /** BN moving statistics of G then D, in the aux/bnStats layout. */
  private readonly stateVariables: tf.Variable[];
  private readonly gWeights: Float32Array;
  private readonly dWeights: Float32Array;
  private readonly bnStats: Float32Array;
  private readonly gAdam: Adam;
  private readonly dAdam: Adam;
  private disposed = false;

  constructor(
    readonly spec: ModelSpec,
    readonly options: Readonly<GanOptions>,
    dataShape: readonly number[],
  ) {
    validateModelSpec(spec);
    validateGanOptions(options);
    this.sampleShape = sampleShapeOf(spec);
    if (dataShape.length !== this.sampleShape.length || dataShape.some((v, i) => v !== this.sampleShape[i])) {
      throw new ConfigError(
        `model ${spec.kind} makes samples of shape [${this.sampleShape.join(', ')}] but the dataset's are [${dataShape.join(', ')}]`,
      );
    }
    this.sampleSize = this.sampleShape.reduce((a, b) => a * b, 1);
    this.latentDim = spec.latentDim;

    const { generator, discriminator } = buildNetworks(spec);
    this.generator = generator;
    this.discriminator = discriminator;
    this.g = networkVariables(generator);
    this.d = networkVariables(discriminator);
    this.stateVariables = [...this.g.state, ...this.d.state];
    this.layout = { g: this.g.trainableInfo, d: this.d.trainableInfo, bn: [...this.g.stateInfo, ...this.d.stateInfo] };
    this.gParamCount = flatSize(this.g.trainableInfo);
    this.dParamCount = flatSize(this.d.trainableInfo);
    this.auxCount = flatSize(this.g.stateInfo) + flatSize(this.d.stateInfo);
    const expected = parameterCounts(spec);
    if (expected.g !== this.gParamCount || expected.d !== this.dParamCount || expected.bnStats !== this.auxCount) {
      // spec.ts and the builders disagree: a bug, never a user error.
      throw new Error(
        `parameter counts drifted: built G ${this.gParamCount}, D ${this.dParamCount}, BN ${this.auxCount}; ` +
          `spec.ts says ${expected.g}, ${expected.d}, ${expected.bnStats}`,
      );
    }

    this.gWeights = initialValues(this.g.trainableInfo, options.seed, NetworkId.Generator);
    this.dWeights = initialValues(this.d.trainableInfo, options.seed, NetworkId.Discriminator);
    this.bnStats = initialValues(this.layout.bn, options.seed, NetworkId.Generator);
    const hyper = { lr: options.lr, beta1: options.beta1, beta2: options.beta2, epsilon: options.epsilon };
    this.gAdam = new Adam(this.gParamCount, hyper, 'G');
    this.dAdam = new Adam(this.dParamCount, hyper, 'D');
    this.writeAll();
  }

  private writeAll(): void {
    writeFlat(this.gWeights, this.g.trainable);
    writeFlat(this.dWeights, this.d.trainable);
    if (this.auxCount > 0) writeFlat(this.bnStats, this.stateVariables);
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('TfGanTrainer: used after dispose()');
  }

  private checkInput(input: PhaseInput, phase: 'D' | 'G'): number {
    const n = input.positions.length;
    if (!Number.isSafeInteger(input.step) || input.step < 0) throw new ProtocolError(`${phase} phase: step ${input.step} is not a non-negative integer`);
    if (n < 1) throw new ProtocolError(`${phase} phase of step ${input.step}: no positions given`);
    if (!Number.isSafeInteger(input.globalBatch) || input.globalBatch < n) {
      throw new ProtocolError(`${phase} phase of step ${input.step}: global batch ${input.globalBatch} is smaller than the slice (${n})`);
    }
    for (const p of input.positions) {
      if (p < 0 || p >= input.globalBatch) {
        throw new ProtocolError(`${phase} phase of step ${input.step}: position ${p} is outside the global batch [0, ${input.globalBatch})`);
      }
    }
    if (phase === 'D') {
      const want = n * this.sampleSize;
      if (input.real === undefined || input.real.length !== want) {
        throw new ProtocolError(
          `D phase of step ${input.step}: real samples hold ${input.real?.length ?? 0} floats, expected ${n} × ${this.sampleSize} = ${want}`,
        );
      }
    }
    return n;
  }

  private latents(stream: Stream, input: PhaseInput): Float32Array {
    const n = input.positions.length;
    return normalRows(new Float32Array(n * this.latentDim), this.options.seed, stream, input.step, input.positions, this.latentDim);
  }

  /** σ·N(0, 1) rows of sampleSize, by position; `tag` separates the G phase's draws from the D phase's. */
  private instanceNoise(stream: Stream, input: PhaseInput, tag?: number): Float32Array {
    const n = input.positions.length;
    const dim = this.sampleSize;
    const out = new Float32Array(n * dim);
    const sigma = this.options.instanceNoise;
    if (tag === undefined) {
      normalRows(out, this.options.seed, stream, input.step, input.positions, dim);
    } else {
      for (let r = 0; r < n; r++) {
        const rng = new Rng(this.options.seed, stream, input.step, input.positions[r]!, tag);
        for (let j = 0; j < dim; j++) out[r * dim + j] = rng.normal();
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = out[i]! * sigma;
    return out;
  }

  /**
   * Reads back [gradients | stats | BN state] in one transfer, restores the BN
   * state the forward pass moved, and scales the gradient to this slice's share.
   */
  private async finish(
    packed: tf.Tensor,
    paramCount: number,
    statCount: number,
    scale: number,
  ): Promise<{ gradients: Float32Array; stats: Float32Array; aux: Float32Array }> {
    // Restore before awaiting: packed already holds a copy of the moved statistics.
    if (this.auxCount > 0) writeFlat(this.bnStats, this.stateVariables);
    let data: Float32Array;
    try {
      data = (await packed.data()) as Float32Array;
    } finally {
      packed.dispose();
    }
    const gradients = new Float32Array(paramCount);
    for (let i = 0; i < paramCount; i++) gradients[i] = data[i]! * scale;
    return {
      gradients,
      stats: data.slice(paramCount, paramCount + statCount),
      aux: data.slice(paramCount + statCount),
    };
  }

  /**
   * Runs a phase's tf work; `cleanup` always runs after it, and if it throws,
   * the BN statistics a training-mode forward may have moved are restored.
   */
  private guarded(work: () => tf.Tensor, cleanup?: () => void): tf.Tensor {
    try {
      return work();
    } catch (err) {
      if (this.auxCount > 0) writeFlat(this.bnStats, this.stateVariables);
      throw err;
    } finally {
      cleanup?.();
    }
  }

  private gradientsInOrder(grads: Record<string, tf.Tensor>, vars: readonly tf.Variable[], phase: string): tf.Tensor[] {
    return vars.map((v) => {
      const g = grads[v.name];
      if (g === undefined) throw new Error(`${phase} phase: no gradient for variable ${v.name}`);
      return tf.reshape(g, [-1]);
    });
  }

  async computeDGradients(input: PhaseInput): Promise<PhaseResult> {
    this.checkAlive();
    const n = this.checkInput(input, 'D');
    const t0 = performance.now();
    const z = this.latents(Stream.DPhaseLatent, input);
    let real = input.real!;
    let fakeNoise: Float32Array | undefined;
    if (this.options.instanceNoise > 0) {
      const realNoise = this.instanceNoise(Stream.InstanceNoiseReal, input);
      const noisy = new Float32Array(real.length);
      for (let i = 0; i < noisy.length; i++) noisy[i] = real[i]! + realNoise[i]!;
      real = noisy;
      fakeNoise = this.instanceNoise(Stream.InstanceNoiseFake, input);
    }
    const { labelSmoothing } = this.options;
    let kept: tf.Tensor | undefined;
    const packed = this.guarded(() => tf.tidy(() => {
      // G in training mode (BN batch statistics); its variables are not differentiated.
      let fake = applyUnfused(this.generator, tf.tensor2d(z, [n, this.latentDim]), true);
      if (fakeNoise !== undefined) fake = tf.add(fake, tf.tensor(fakeNoise, fake.shape));
      const realT = tf.tensor(real, [n, ...this.sampleShape]);
      // One D pass over [real; fake]: D has no BN, so this equals two passes.
      const both = tf.concat([realT, fake], 0);
      const { grads } = tf.variableGrads(() => {
        const logits = applyUnfused(this.discriminator, both, true);
        const realLogits = tf.slice(logits, [0, 0], [n, 1]);
        const fakeLogits = tf.slice(logits, [n, 0], [n, 1]);
        const loss = discriminatorLoss(realLogits, fakeLogits, labelSmoothing);
        const acc = discriminatorAccuracy(realLogits, fakeLogits);
        kept = tf.keep(tf.stack([loss, acc.real, acc.fake]));
        return loss;
      }, this.d.trainable);
      const parts = this.gradientsInOrder(grads, this.d.trainable, 'D');
      parts.push(kept!);
      for (const v of this.stateVariables) parts.push(tf.reshape(v, [-1]));
      return tf.concat(parts);
    }), () => kept?.dispose());
    const out = await this.finish(packed, this.dParamCount, 3, n / input.globalBatch);
    const [dLoss, dAccuracyReal, dAccuracyFake] = out.stats as unknown as [number, number, number];
    if (!Number.isFinite(dLoss)) throw new NumericError(`D loss is ${dLoss} at step ${input.step} (positions ${input.positions[0]}…)`);
    return { gradients: out.gradients, aux: out.aux, stats: { dLoss, dAccuracyReal, dAccuracyFake }, computeSeconds: seconds(t0) };
  }

  async computeGGradients(input: PhaseInput): Promise<PhaseResult> {
    this.checkAlive();
    const n = this.checkInput(input, 'G');
    const t0 = performance.now();
    const z = this.latents(Stream.GPhaseLatent, input);
    const fakeNoise = this.options.instanceNoise > 0 ? this.instanceNoise(Stream.InstanceNoiseFake, input, 1) : undefined;
    const { entropyWeight } = this.options;
    const packed = this.guarded(() => tf.tidy(() => {
      const zT = tf.tensor2d(z, [n, this.latentDim]);
      const noiseT = fakeNoise === undefined ? undefined : tf.tensor(fakeNoise, [n, ...this.sampleShape]);
      const { value, grads } = tf.variableGrads(() => {
        let fake = applyUnfused(this.generator, zT, true);
        if (noiseT !== undefined) fake = tf.add(fake, noiseT);
        const fakeLogits = applyUnfused(this.discriminator, fake, true);
        return generatorLoss(fakeLogits, entropyWeight);
      }, this.g.trainable);
      const parts = this.gradientsInOrder(grads, this.g.trainable, 'G');
      parts.push(tf.reshape(value, [1]));
      for (const v of this.stateVariables) parts.push(tf.reshape(v, [-1]));
      return tf.concat(parts);
    }));
    const out = await this.finish(packed, this.gParamCount, 1, n / input.globalBatch);
    const gLoss = out.stats[0]!;
    if (!Number.isFinite(gLoss)) throw new NumericError(`G loss is ${gLoss} at step ${input.step} (positions ${input.positions[0]}…)`);
    return { gradients: out.gradients, aux: out.aux, stats: { gLoss }, computeSeconds: seconds(t0) };
  }

  private checkAux(aux: Float32Array, phase: string): void {
    if (aux.length === 0) return;
    if (aux.length !== this.auxCount) throw new ProtocolError(`${phase}: aux holds ${aux.length} floats, expected ${this.auxCount} (or none)`);
    for (let i = 0; i < aux.length; i++) {
      const a = aux[i]!;
      if (a - a !== 0) throw new NumericError(`${phase}: BN statistic ${i} is ${a}; state unchanged`);
    }
  }

  private check(adam: Adam, weights: Float32Array, gradients: Float32Array, aux: Float32Array, phase: string): void {
    this.checkAlive();
    if (gradients.length !== weights.length) {
      throw new ProtocolError(`${phase}: gradient holds ${gradients.length} floats, expected ${weights.length}`);
    }
    this.checkAux(aux, phase);
    adam.check(gradients);
  }

  private apply(adam: Adam, weights: Float32Array, vars: tf.Variable[], gradients: Float32Array, aux: Float32Array, phase: string): void {
    this.check(adam, weights, gradients, aux, phase);
    adam.apply(weights, gradients);
    writeFlat(weights, vars);
    if (aux.length > 0) {
      this.bnStats.set(aux);
      writeFlat(this.bnStats, this.stateVariables);
    }
  }

  applyDGradients(gradients: Float32Array, aux: Float32Array): void {
    this.apply(this.dAdam, this.dWeights, this.d.trainable, gradients, aux, 'applyDGradients');
  }

  applyGGradients(gradients: Float32Array, aux: Float32Array): void {
    this.apply(this.gAdam, this.gWeights, this.g.trainable, gradients, aux, 'applyGGradients');
  }

  checkUpdate(network: Network, gradients: Float32Array, aux: Float32Array): void {
    if (network === 'd') this.check(this.dAdam, this.dWeights, gradients, aux, 'applyDGradients');
    else this.check(this.gAdam, this.gWeights, gradients, aux, 'applyGGradients');
  }

  /** The gradient of the phase `phase` (shared/gan/phases.ts), computed by its registered loss. */
  computeGradients(phase: string, input: PhaseInput): Promise<PhaseResult> {
    const loss = PHASE_LOSSES.get(phase);
    if (!loss) throw new ConfigError(`phase ${JSON.stringify(phase)} has no loss in this distgan (registered: ${[...PHASE_LOSSES.keys()].join(', ')})`);
    return loss(this, input);
  }

  applyGradients(network: Network, gradients: Float32Array, aux: Float32Array): void {
    if (network === 'd') this.applyDGradients(gradients, aux);
    else this.applyGGradients(gradients, aux);
  }

  skipUpdate(network: Network): void {
    this.checkAlive();
    (network === 'd' ? this.dAdam : this.gAdam).skip();
  }

  /** Completed optimizer steps (G updates; D may be one ahead between phases). */
  get step(): number {
    return this.gAdam.step;
  }

  getState(): TrainerState {
    this.checkAlive();
    if (this.gAdam.step !== this.dAdam.step) {
      throw new Error(`getState: D has ${this.dAdam.step} updates but G ${this.gAdam.step}; take state between steps, not between phases`);
    }
    const g = this.gAdam.getState();
    const d = this.dAdam.getState();
    return {
      step: g.step,
      gWeights: this.gWeights.slice(),
      dWeights: this.dWeights.slice(),
      bnStats: this.bnStats.slice(),
      gAdamM: g.m,
      gAdamV: g.v,
      dAdamM: d.m,
      dAdamV: d.v,
    };
  }

  setState(state: TrainerState): void {
    this.checkAlive();
    const want: Array<[keyof TrainerState, number]> = [
      ['gWeights', this.gParamCount],
      ['gAdamM', this.gParamCount],
      ['gAdamV', this.gParamCount],
      ['dWeights', this.dParamCount],
      ['dAdamM', this.dParamCount],
      ['dAdamV', this.dParamCount],
      ['bnStats', this.auxCount],
    ];
    for (const [key, size] of want) {
      const arr = state[key];
      if (!(arr instanceof Float32Array) || arr.length !== size) {
        const got = arr instanceof Float32Array ? `${arr.length} floats` : typeof arr;
        throw new CheckpointError(`trainer state ${key}: ${got}, but this model (${this.spec.kind}) needs ${size} floats`);
      }
    }
    if (!Number.isSafeInteger(state.step) || state.step < 0) throw new CheckpointError(`trainer state step: ${state.step} is not a non-negative integer`);
    this.gWeights.set(state.gWeights);
    this.dWeights.set(state.dWeights);
    this.bnStats.set(state.bnStats);
    this.gAdam.setState(state.step, state.gAdamM, state.gAdamV);
    this.dAdam.setState(state.step, state.dAdamM, state.dAdamV);
    this.writeAll();
  }

  /** sha256 over G weights, D weights and BN statistics (in that order), first 16 hex digits. */
  checksum(): string {
    const h = createHash('sha256');
    for (const a of [this.gWeights, this.dWeights, this.bnStats]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return h.digest('hex').slice(0, 16);
  }

  generate(latents: Float32Array, n: number): Float32Array {
    this.checkAlive();
    if (!Number.isSafeInteger(n) || n < 1 || latents.length !== n * this.latentDim) {
      throw new RangeError(`generate: ${latents.length} latent floats for n = ${n}, expected n × ${this.latentDim}`);
    }
    const out = tf.tidy(() => this.generator.apply(tf.tensor2d(latents, [n, this.latentDim]), { training: false }) as tf.Tensor);
    try {
      return Float32Array.from(out.dataSync());
    } finally {
      out.dispose();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.generator.dispose();
    this.discriminator.dispose();
  }
}
