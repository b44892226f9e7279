/**
 * applyUnfused (the trainer's forward pass for gradients) computes the same
 * function as tfjs-layers' own model.apply, for every model kind, in training
 * and inference mode, with the same gradients and the same BN moving
 * statistics: it only swaps fused conv/matmul kernels for plain ones and
 * tfjs's batch-norm gradient for the closed form.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { buildNetworks } from '../../src/shared/gan/trainer.js';
import { applyUnfused } from '../../src/shared/models/forward.js';
import { resolveModelSpec, sampleShapeOf, type ModelSpec } from '../../src/shared/models/spec.js';
import { initialValues, networkVariables, writeFlat, NetworkId, type NetworkVariables } from '../../src/shared/models/variables.js';
import { size, values } from '../helpers/values.js';


const SPECS: Array<{ label: string; spec: ModelSpec }> = [
  { label: 'DCGAN 28×28×1 with BN', spec: resolveModelSpec('dcgan', [28, 28, 1], { width: 1 / 8, latentDim: 16 }) },
  { label: 'DCGAN 32×32×3 without BN', spec: resolveModelSpec('dcgan', [32, 32, 3], { width: 1 / 16, latentDim: 16, batchNorm: false }) },
  { label: 'MLP 2-D', spec: resolveModelSpec('mlp', [2], {}) },
];

type Sequential = ReturnType<typeof buildNetworks>['generator'];

/**
 * Builds the spec's G and D and runs `body` on each, with weights moved off
 * their initial values (biases start at 0 and would hide a dropped bias) and a
 * deterministic input batch; disposes everything afterwards.
 */
function forEachNetwork(
  spec: ModelSpec,
  o: { weightSeed: number; wiggle: (i: number) => number; batch: number; inputSeed: number },
  body: (model: Sequential, vars: NetworkVariables, x: tf.Tensor) => void,
): void {
  const { generator, discriminator } = buildNetworks(spec);
  try {
    for (const [model, id] of [[generator, NetworkId.Generator], [discriminator, NetworkId.Discriminator]] as const) {
      const vars = networkVariables(model);
      writeFlat(initialValues(vars.trainableInfo, o.weightSeed, id).map((v, i) => v + o.wiggle(i)), vars.trainable);
      const inputShape = model === generator ? [o.batch, spec.latentDim] : [o.batch, ...sampleShapeOf(spec)];
      const x = tf.tensor(values(size(inputShape), o.inputSeed), inputShape);
      try {
        body(model, vars, x);
      } finally {
        x.dispose();
      }
    }
  } finally {
    generator.dispose();
    discriminator.dispose();
  }
}

describe('applyUnfused matches model.apply', () => {
  before(async () => {
    await initBackend('wasm', { log: () => {} });
  });

  for (const { label, spec } of SPECS) {
    it(`${label}: training-mode gradients of every variable, and the moving statistics, agree`, () => {
      forEachNetwork(spec, { weightSeed: 6, wiggle: (i) => 0.05 * Math.cos(i * 0.7), batch: 4, inputSeed: 10 }, (model, vars, x) => {
        const start = vars.state.map((v) => tf.clone(v));
        const run = (forward: () => tf.Tensor): { grads: Float32Array[]; state: Float32Array[] } => {
          vars.state.forEach((v, i) => v.assign(start[i]!));
          const { value, grads } = tf.variableGrads(() => {
            const y = forward();
            // A loss that weights every output differently, so no gradient term cancels by symmetry.
            const w = tf.tensor(values(y.size, 12), y.shape);
            return tf.sum(tf.mul(y, w)) as tf.Scalar;
          }, vars.trainable);
          const out = { grads: vars.trainable.map((v) => grads[v.name]!.dataSync() as Float32Array), state: vars.state.map((v) => v.dataSync() as Float32Array) };
          tf.dispose([value, ...Object.values(grads)]);
          return out;
        };
        const before = tf.memory().numTensors;
        const ours = run(() => applyUnfused(model, x, true));
        const theirs = run(() => model.apply(x, { training: true }) as tf.Tensor);
        assert.equal(tf.memory().numTensors, before, `${model.name}: tensors leaked`);
        ours.grads.forEach((g, k) => {
          const ref = theirs.grads[k]!;
          let err = 0;
          let norm = 0;
          for (let i = 0; i < g.length; i++) {
            err += (g[i]! - ref[i]!) ** 2;
            norm += ref[i]! ** 2;
          }
          const rel = Math.sqrt(err / Math.max(norm, 1e-30));
          assert.ok(rel <= 1e-5, `${model.name} gradient ${k} (${vars.trainableInfo[k]!.role}): relative L2 ${rel}`);
        });
        // Same ops in the same order as tfjs-layers' update: bit-identical.
        ours.state.forEach((st, k) => assert.deepEqual(Array.from(st), Array.from(theirs.state[k]!), `${model.name} BN state ${k}`));
        tf.dispose(start);
      });
    });

    for (const training of [true, false]) {
      it(`${label}, ${training ? 'training' : 'inference'} mode: G and D outputs agree to float32 rounding`, () => {
        forEachNetwork(spec, { weightSeed: 5, wiggle: (i) => 0.05 * Math.sin(i * 1.3), batch: 3, inputSeed: 9 }, (model, vars, x) => {
          const state = vars.state.map((v) => tf.clone(v));
          const before = tf.memory().numTensors;
          const ours = applyUnfused(model, x, training);
          // Training-mode BN moved the moving statistics: put them back so both passes start alike.
          vars.state.forEach((v, i) => v.assign(state[i]!));
          const theirs = tf.tidy(() => model.apply(x, { training }) as tf.Tensor);
          assert.deepEqual(ours.shape, theirs.shape);
          const a = ours.dataSync();
          const b = theirs.dataSync();
          let err = 0;
          for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
          assert.ok(err <= 1e-5, `${model.name}: max relative difference ${err}`);
          tf.dispose([ours, theirs]);
          assert.equal(tf.memory().numTensors, before, `${model.name}: applyUnfused leaked tensors`);
          tf.dispose(state);
        });
      });
    }
  }
});
