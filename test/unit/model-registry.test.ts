/**
 * The model registry (src/shared/models/registry.ts): a model defined here,
 * in the test file, and registered at run time is accepted by --model,
 * resolved, validated, counted, built, trained and rendered with no edit
 * anywhere else; and for every registered kind the parameter counts read off
 * the layer plans equal those of the built networks. cpu backend, tiny nets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { resolveConfig } from '../../src/shared/config.js';
import { createMixtureDataset } from '../../src/shared/data/mixtures.js';
import { ConfigError } from '../../src/shared/errors.js';
import { resolveGanOptions } from '../../src/shared/gan/options.js';
import { TfGanTrainer, buildNetworks } from '../../src/shared/gan/trainer.js';
import type { ModelDefinition } from '../../src/shared/models/api.js';
import { buildSequential } from '../../src/shared/models/build.js';
import { countPlan, type NetworkPlan } from '../../src/shared/models/layers.js';
import { BUILTIN_MODELS, modelDefinitions, modelKinds, registerModel, unregisterModel } from '../../src/shared/models/registry.js';
import { parameterCounts, resolveModelSpec, sampleShapeOf, validateModelSpec, type ModelSpec } from '../../src/shared/models/spec.js';
import { flatSize, networkVariables } from '../../src/shared/models/variables.js';
import { renderSamples } from '../../src/shared/samples.js';

/** The toy model: G z → hidden → n (tanh), D n → hidden → 1 logit; one hidden layer each, no BN. */
interface ToySpec {
  kind: 'toy';
  latentDim: number;
  /** Units of the one hidden layer. */
  hidden: number;
  /** Floats per sample. */
  outputDim: number;
}

const toy: ModelDefinition<ToySpec> = {
  kind: 'toy',
  autoFor: 'points (after mlp)',
  shapeHint: '[n] (toy)',
  keys: ['kind', 'latentDim', 'hidden', 'outputDim'],
  rendering: 'points',
  fits: (shape) => shape.length === 1,
  resolve: (shape, opts) => {
    if (shape.length !== 1) throw new ConfigError(`--model toy needs samples [n], not [${shape.join(', ')}]`);
    return { kind: 'toy', latentDim: opts.latentDim, hidden: Math.max(1, Math.round(16 * opts.width)), outputDim: shape[0]! };
  },
  validate: (s) => {
    if (!Number.isInteger(s.hidden) || (s.hidden as number) < 1) throw new ConfigError(`model spec hidden: ${JSON.stringify(s.hidden)} is not a positive integer`);
    if (!Number.isInteger(s.outputDim) || (s.outputDim as number) < 1) throw new ConfigError(`model spec outputDim: ${JSON.stringify(s.outputDim)} is not a positive integer`);
  },
  generator: (s) => ({
    name: 'generator',
    inputShape: [s.latentDim],
    layers: [
      { type: 'dense', name: 'g_hidden', units: s.hidden, useBias: true, activation: 'relu' },
      { type: 'dense', name: 'g_out', units: s.outputDim, useBias: true, activation: 'tanh' },
    ],
  }),
  discriminator: (s) => ({
    name: 'discriminator',
    inputShape: [s.outputDim],
    layers: [
      { type: 'dense', name: 'd_hidden', units: s.hidden, useBias: true, activation: 'linear' },
      { type: 'leakyReLU', name: 'd_act', alpha: 0.2 },
      { type: 'dense', name: 'd_logit', units: 1, useBias: true, activation: 'linear' },
    ],
  }),
};

before(async () => {
  await initBackend('cpu', { log: () => {} });
  registerModel(toy);
});

after(() => {
  unregisterModel('toy');
  assert.equal(tf.memory().numTensors, 0, 'every model and trainer disposed');
});

const range = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

describe('a model registered from this file', () => {
  it('is taken by --model and resolves, validates and counts through the registry', () => {
    assert.deepEqual(modelKinds(), ['dcgan', 'mlp', 'toy']);
    assert.equal(resolveConfig({ model: 'toy', dataset: 'ring8' }).model, 'toy');
    const spec = resolveModelSpec('toy', [2], { width: 0.5, latentDim: 4 }) as unknown as ToySpec;
    assert.deepEqual(spec, { kind: 'toy', latentDim: 4, hidden: 8, outputDim: 2 });
    validateModelSpec({ ...spec }); // a copy: the assertion would narrow `spec` (a ToySpec, outside ModelSpec) to never
    assert.throws(() => validateModelSpec({ ...spec, depth: 2 }), /unknown key "depth" for kind toy/);
    assert.throws(() => validateModelSpec({ ...spec, hidden: 0 }), /hidden: 0/);
    assert.deepEqual(sampleShapeOf(spec), [2]);
    // G: 4·8+8 + 8·2+2 = 58; D: 2·8+8 + 8·1+1 = 33.
    assert.deepEqual(parameterCounts(spec), { g: 58, d: 33, bnStats: 0 });
  });

  it('trains 2 steps with TfGanTrainer on a tiny 2-D dataset and renders points', async () => {
    const spec = resolveModelSpec('toy', [2], { width: 0.5, latentDim: 4 });
    const data = createMixtureDataset('ring8', 16);
    const trainer = new TfGanTrainer(spec as ModelSpec, resolveGanOptions({ seed: 3, lr: 1e-2 }), data.shape);
    try {
      assert.equal(trainer.gParamCount, 58);
      assert.equal(trainer.dParamCount, 33);
      const before = trainer.getState();
      const positions = range(8);
      for (let step = 0; step < 2; step++) {
        const real = await data.read(positions.map((p) => p + 8 * step));
        const d = await trainer.computeDGradients({ step, positions, globalBatch: 8, real });
        assert.ok(Number.isFinite(d.stats.dLoss));
        trainer.applyDGradients(d.gradients, d.aux);
        const g = await trainer.computeGGradients({ step, positions, globalBatch: 8 });
        assert.ok(Number.isFinite(g.stats.gLoss));
        trainer.applyGGradients(g.gradients, g.aux);
      }
      const state = trainer.getState();
      assert.equal(state.step, 2);
      assert.ok(state.gWeights.some((v, i) => v !== before.gWeights[i]), 'G moved');
      assert.ok(state.dWeights.some((v, i) => v !== before.dWeights[i]), 'D moved');
      const png = renderSamples(trainer, spec, 3, 64, 'ring8');
      assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from('PNG')]);
    } finally {
      trainer.dispose();
      await data.close();
    }
  });

  it('comes after the built-ins for --model auto, and its shape joins the error hint', () => {
    assert.equal(resolveModelSpec('auto', [2], {}).kind, 'mlp');
    assert.throws(
      () => resolveModelSpec('auto', [4, 4], {}),
      (e: unknown) => e instanceof ConfigError && e.message.includes('(need [H, H, 1|3] or [n] or [n] (toy))'),
    );
  });

  it('refuses a second registration, reserved or malformed kinds, and removing a built-in', () => {
    assert.throws(() => registerModel(toy), /already registered/);
    assert.throws(() => registerModel({ ...toy, kind: 'auto' } as unknown as ModelDefinition), /not 'auto'/);
    assert.throws(() => registerModel({ ...toy, kind: 'Toy2' } as unknown as ModelDefinition), /lower-case/);
    assert.throws(() => unregisterModel('mlp'), /built in/);
  });

  it('is refused again once unregistered', () => {
    const spec = resolveModelSpec('toy', [3], {});
    unregisterModel('toy');
    try {
      assert.throws(() => validateModelSpec(spec), (e: unknown) => e instanceof ConfigError && /kind: "toy" is not a registered model \(dcgan, mlp\)/.test(e.message));
      assert.throws(() => resolveConfig({ model: 'toy' }), /--model: "toy" is not one of auto, dcgan, mlp/);
      assert.throws(() => resolveModelSpec('toy', [2], {}), /--model: "toy" is not one of auto, dcgan, mlp/);
    } finally {
      registerModel(toy);
    }
  });
});

describe('parameter counts are read off the layer plans', () => {
  /** Sample shapes to try; every registered kind must fit at least one. */
  const SHAPES = [[28, 28, 1], [32, 32, 3], [64, 64, 1], [2], [5]];
  const WIDTHS = [0.0625, 0.25, 1];

  it('and equal the built networks for every registered kind at several widths', () => {
    for (const definition of modelDefinitions()) {
      const shapes = SHAPES.filter((s) => definition.fits(s));
      assert.ok(shapes.length > 0, `${definition.kind} fits none of the test shapes: add one`);
      for (const shape of shapes) {
        for (const width of WIDTHS) {
          for (const batchNorm of [true, false]) {
            const spec = resolveModelSpec(definition.kind, shape, { width, batchNorm, latentDim: 8 });
            const { generator, discriminator } = buildNetworks(spec);
            try {
              const g = networkVariables(generator);
              const d = networkVariables(discriminator);
              const label = `${definition.kind} ${JSON.stringify(shape)} width ${width} BN ${batchNorm}`;
              assert.deepEqual(
                parameterCounts(spec),
                { g: flatSize(g.trainableInfo), d: flatSize(d.trainableInfo), bnStats: flatSize(g.stateInfo) + flatSize(d.stateInfo) },
                label,
              );
              assert.deepEqual(generator.outputs[0]!.shape, [null, ...shape], label);
              assert.deepEqual(discriminator.outputs[0]!.shape, [null, 1], label);
            } finally {
              generator.dispose();
              discriminator.dispose();
            }
          }
        }
      }
    }
  });

  it('for every layer type and padding, as tfjs-layers builds them', () => {
    const plan: NetworkPlan = {
      name: 'every-layer',
      inputShape: [11, 11, 3],
      layers: [
        { type: 'conv2d', name: 'c_same', filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: true, activation: 'linear' },
        { type: 'batchNorm', name: 'bn', momentum: 0.9, epsilon: 1e-3 },
        { type: 'leakyReLU', name: 'act', alpha: 0.2 },
        { type: 'conv2d', name: 'c_valid', filters: 5, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, activation: 'relu' },
        { type: 'conv2dTranspose', name: 't_valid', filters: 2, kernelSize: 4, strides: 3, padding: 'valid', useBias: true, activation: 'linear' },
        { type: 'conv2dTranspose', name: 't_same', filters: 3, kernelSize: 5, strides: 2, padding: 'same', useBias: false, activation: 'tanh' },
        { type: 'flatten', name: 'flat' },
        { type: 'dense', name: 'fc', units: 6, useBias: false, activation: 'sigmoid' },
        { type: 'reshape', name: 'rs', targetShape: [2, 3] },
        { type: 'dense', name: 'fc2', units: 2, useBias: true, activation: 'linear' },
      ],
    };
    const counted = countPlan(plan);
    const model = buildSequential(plan);
    try {
      const v = networkVariables(model);
      assert.deepEqual(counted, { trainable: flatSize(v.trainableInfo), state: flatSize(v.stateInfo), outputShape: model.outputs[0]!.shape.slice(1) });
      // 11 → same/2 → 6 → valid 3/2 → 2 → convT valid 4/3 → 7 → convT same/2 → 14.
      assert.deepEqual(counted.outputShape, [2, 2]);
    } finally {
      model.dispose();
    }
  });

  it('refuse a plan that cannot be built, naming the layer', () => {
    const base = { name: 'bad', inputShape: [4] };
    assert.throws(() => countPlan({ ...base, layers: [{ type: 'reshape', name: 'r', targetShape: [3] }] }), /bad\/r: cannot reshape \[4\] to \[3\]/);
    assert.throws(() => countPlan({ ...base, layers: [{ type: 'conv2d', name: 'c', filters: 1, kernelSize: 1, strides: 1, padding: 'same', useBias: true, activation: 'linear' }] }), /bad\/c: needs an \[H, W, C\] input/);
    assert.throws(() => countPlan({ ...base, layers: [{ type: 'flatten', name: 'f' }, { type: 'flatten', name: 'f' }] }), /bad\/f: name used twice/);
    assert.throws(() => countPlan({ ...base, layers: [] }), /no layers/);
  });

  it('and the built-ins are listed in registry order', () => {
    assert.deepEqual(BUILTIN_MODELS.map((d) => d.kind), ['dcgan', 'mlp']);
  });
});
