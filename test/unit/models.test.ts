/**
 * Model specs, the DCGAN and MLP definitions (built through the model
 * registry) and the positional variable layout. Building is cheap on the cpu
 * backend; nothing here trains. model-registry.test.ts covers the registry.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { ConfigError } from '../../src/shared/errors.js';
import { buildNetworks } from '../../src/shared/gan/trainer.js';
import {
  canonicalJson,
  fingerprintOf,
  parameterCounts,
  resolveModelSpec,
  validateModelSpec,
  type DcganSpec,
  type ModelSpec,
} from '../../src/shared/models/spec.js';
import { NetworkId, flatSize, flattenInto, initialValues, networkVariables, writeFlat } from '../../src/shared/models/variables.js';

before(async () => {
  await initBackend('cpu', { log: () => {} });
});

function withNetworks<T>(spec: ModelSpec, fn: (nets: ReturnType<typeof buildNetworks>) => T): T {
  const nets = buildNetworks(spec);
  try {
    return fn(nets);
  } finally {
    nets.generator.dispose();
    nets.discriminator.dispose();
  }
}

describe('DCGAN at 28×28×1, width 1 (facts.md reference model)', () => {
  const spec = resolveModelSpec('auto', [28, 28, 1], {});

  it('resolves auto to a BN DCGAN with latent 100', () => {
    assert.deepEqual(spec, { kind: 'dcgan', resolution: 28, channels: 1, latentDim: 100, width: 1, batchNorm: true });
  });

  it('has G 846,273 trainable + 12,672 BN statistics and D 212,865, in 8 + 6 tensors', () => {
    withNetworks(spec, ({ generator, discriminator }) => {
      const g = networkVariables(generator);
      const d = networkVariables(discriminator);
      assert.equal(flatSize(g.trainableInfo), 846_273);
      assert.equal(flatSize(g.stateInfo), 12_672);
      assert.equal(flatSize(d.trainableInfo), 212_865);
      assert.equal(flatSize(d.stateInfo), 0);
      assert.equal(g.trainable.length + d.trainable.length, 14);
      assert.deepEqual(parameterCounts(spec), { g: 846_273, d: 212_865, bnStats: 12_672 });
    });
  });

  it('maps [n, 100] to [n, 28, 28, 1] and images to one logit', () => {
    withNetworks(spec, ({ generator, discriminator }) => {
      assert.deepEqual(generator.inputs[0]!.shape, [null, 100]);
      assert.deepEqual(generator.outputs[0]!.shape, [null, 28, 28, 1]);
      assert.deepEqual(discriminator.inputs[0]!.shape, [null, 28, 28, 1]);
      assert.deepEqual(discriminator.outputs[0]!.shape, [null, 1]);
      const roles = networkVariables(generator).trainableInfo.map((i) => `${i.role}[${i.shape.join('x')}]`);
      // dense (no bias: BN follows), BN γβ, convT 64 (no bias), BN γβ, convT 1 (+bias).
      assert.deepEqual(roles, [
        'kernel[100x6272]',
        'gamma[6272]',
        'beta[6272]',
        'kernel[5x5x64x128]',
        'gamma[64]',
        'beta[64]',
        'kernel[5x5x1x64]',
        'bias[1]',
      ]);
    });
  });
});

describe('DCGAN family', () => {
  for (const resolution of [32, 64, 128] as const) {
    for (const channels of [1, 3] as const) {
      for (const batchNorm of [true, false]) {
        it(`${resolution}×${resolution}×${channels}, BN ${batchNorm}: shapes and counts match spec.ts`, () => {
          const spec = resolveModelSpec('dcgan', [resolution, resolution, channels], { width: 0.125, batchNorm, latentDim: 16 });
          withNetworks(spec, ({ generator, discriminator }) => {
            assert.deepEqual(generator.outputs[0]!.shape, [null, resolution, resolution, channels]);
            assert.deepEqual(discriminator.outputs[0]!.shape, [null, 1]);
            const g = networkVariables(generator);
            const d = networkVariables(discriminator);
            assert.deepEqual(parameterCounts(spec), {
              g: flatSize(g.trainableInfo),
              d: flatSize(d.trainableInfo),
              bnStats: flatSize(g.stateInfo),
            });
            // Depth follows the resolution: 4×4 doubled up to the side.
            const convT = generator.layers.filter((l) => l.getClassName() === 'Conv2DTranspose').length;
            assert.equal(convT, Math.log2(resolution / 4));
            assert.equal(g.stateInfo.length === 0, !batchNorm);
          });
        });
      }
    }
  }

  it('width scales the hidden channels', () => {
    const narrow = parameterCounts(resolveModelSpec('dcgan', [28, 28, 1], { width: 0.5 }));
    const wide = parameterCounts(resolveModelSpec('dcgan', [28, 28, 1], { width: 1 }));
    assert.ok(narrow.g < wide.g / 2 && narrow.d < wide.d / 2);
  });
});

describe('MLP', () => {
  it('auto picks an MLP for 2-D points, with counts matching the built layers', () => {
    const spec = resolveModelSpec('auto', [2], { width: 0.5, latentDim: 8 });
    assert.deepEqual(spec, { kind: 'mlp', latentDim: 8, hidden: 64, depth: 2, outputDim: 2 });
    withNetworks(spec, ({ generator, discriminator }) => {
      assert.deepEqual(generator.outputs[0]!.shape, [null, 2]);
      assert.deepEqual(discriminator.outputs[0]!.shape, [null, 1]);
      // G: 8·64+64 + 64·64+64 + 64·2+2; D: 2·64+64 + 64·64+64 + 64+1.
      assert.equal(flatSize(networkVariables(generator).trainableInfo), 576 + 4160 + 130);
      assert.equal(flatSize(networkVariables(discriminator).trainableInfo), 192 + 4160 + 65);
      assert.deepEqual(parameterCounts(spec), { g: 4866, d: 4417, bnStats: 0 });
    });
  });
});

describe('spec validation', () => {
  it('rejects shapes no model fits, naming the shape', () => {
    assert.throws(() => resolveModelSpec('auto', [28, 28], {}), (e: unknown) => e instanceof ConfigError && /\[28, 28\]/.test(e.message));
    assert.throws(() => resolveModelSpec('dcgan', [30, 30, 1], {}), (e: unknown) => e instanceof ConfigError && /resolution: 30/.test(e.message));
    assert.throws(() => resolveModelSpec('dcgan', [28, 32, 1], {}), /square/);
    assert.throws(() => resolveModelSpec('mlp', [28, 28, 1], {}), ConfigError);
  });

  it('names the bad field and refuses unknown keys', () => {
    const good = resolveModelSpec('dcgan', [28, 28, 1], {}) as DcganSpec;
    assert.throws(() => validateModelSpec({ ...good, width: 0 }), /width: 0/);
    assert.throws(() => validateModelSpec({ ...good, channels: 2 }), /channels: 2/);
    assert.throws(() => validateModelSpec({ ...good, latentDim: 1.5 }), /latentDim: 1.5/);
    assert.throws(() => validateModelSpec({ ...good, extra: 1 }), /unknown key "extra"/);
    assert.throws(() => validateModelSpec({ kind: 'gan' }), /kind: "gan"/);
    const { batchNorm: _, ...missing } = good;
    assert.throws(() => validateModelSpec(missing), /missing batchNorm/);
  });
});

describe('fingerprint', () => {
  it('is sha256 of JSON with sorted keys, whatever the key order', () => {
    assert.equal(canonicalJson({ b: [1, { d: 2, c: 'x' }], a: true }), '{"a":true,"b":[1,{"c":"x","d":2}]}');
    assert.equal(fingerprintOf({ b: 1, a: 2 }), fingerprintOf({ a: 2, b: 1 }));
    // printf '%s' '{"a":2,"b":1}' | sha256sum
    assert.equal(fingerprintOf({ b: 1, a: 2 }), 'd3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772');
  });

  it('is stable for a spec and changes with any field', () => {
    const spec = resolveModelSpec('dcgan', [28, 28, 1], {});
    const again = resolveModelSpec('dcgan', [28, 28, 1], {});
    assert.equal(fingerprintOf(spec), fingerprintOf(again));
    assert.match(fingerprintOf(spec), /^[0-9a-f]{64}$/);
    assert.notEqual(fingerprintOf(spec), fingerprintOf({ ...spec, batchNorm: false }));
    assert.notEqual(fingerprintOf(spec), fingerprintOf({ ...spec, width: 0.5 }));
  });

  it('refuses values JSON cannot carry', () => {
    assert.throws(() => fingerprintOf({ lr: NaN }), (e: unknown) => e instanceof ConfigError && /\$\.lr is NaN/.test(e.message));
    assert.throws(() => fingerprintOf({ f: () => 1 }), ConfigError);
  });
});

describe('positional variables', () => {
  const spec = resolveModelSpec('dcgan', [28, 28, 1], { width: 0.25 });

  it('has the same order and initial values in two builds, though tfjs names differ', () => {
    const a = buildNetworks(spec);
    const b = buildNetworks(spec);
    try {
      const va = networkVariables(a.generator);
      const vb = networkVariables(b.generator);
      assert.deepEqual(va.trainableInfo, vb.trainableInfo);
      assert.deepEqual(va.stateInfo, vb.stateInfo);
      assert.deepEqual(networkVariables(a.discriminator).trainableInfo, networkVariables(b.discriminator).trainableInfo);
      // The global counter gives the second build different names: they must never be keys.
      assert.notDeepEqual(
        va.trainable.map((v) => v.name),
        vb.trainable.map((v) => v.name),
      );
      const ia = initialValues(va.trainableInfo, 7, NetworkId.Generator);
      const ib = initialValues(vb.trainableInfo, 7, NetworkId.Generator);
      assert.deepEqual(Buffer.from(ia.buffer), Buffer.from(ib.buffer));
      assert.notDeepEqual(Buffer.from(ia.buffer), Buffer.from(initialValues(va.trainableInfo, 8, NetworkId.Generator).buffer));
    } finally {
      for (const m of [a.generator, a.discriminator, b.generator, b.discriminator]) m.dispose();
    }
  });

  it('initialises kernels Glorot-uniform, γ and moving variance to 1, the rest to 0', () => {
    withNetworks(spec, ({ generator }) => {
      const { trainableInfo, stateInfo } = networkVariables(generator);
      const w = initialValues(trainableInfo, 1, NetworkId.Generator);
      let offset = 0;
      for (const info of trainableInfo) {
        const s = w.subarray(offset, offset + info.size);
        if (info.role === 'kernel') {
          const rf = info.shape.slice(0, -2).reduce((x, y) => x * y, 1);
          const limit = Math.sqrt(6 / ((info.shape.at(-2)! + info.shape.at(-1)!) * rf));
          assert.ok(s.every((v) => Math.abs(v) <= limit));
          assert.ok(s.reduce((m, v) => Math.max(m, Math.abs(v)), 0) > 0.9 * limit);
        } else {
          assert.ok(s.every((v) => v === (info.role === 'gamma' ? 1 : 0)), info.role);
        }
        offset += info.size;
      }
      const bn = initialValues(stateInfo, 1, NetworkId.Generator);
      offset = 0;
      for (const info of stateInfo) {
        assert.ok(bn.subarray(offset, offset + info.size).every((v) => v === (info.role === 'moving_variance' ? 1 : 0)));
        offset += info.size;
      }
    });
  });

  it('round-trips a flat vector through the variables', () => {
    withNetworks(spec, ({ generator }) => {
      const { trainable, trainableInfo, state } = networkVariables(generator);
      const n = flatSize(trainableInfo);
      const flat = new Float32Array(n).map((_, i) => Math.sin(i) * 0.1);
      const before = tf.memory().numTensors;
      writeFlat(flat, trainable);
      assert.equal(tf.memory().numTensors, before);
      const back = flattenInto(trainable);
      assert.deepEqual(Buffer.from(back.buffer), Buffer.from(flat.buffer));
      // Each tensor holds its own slice, in order.
      assert.equal(trainable[0]!.dataSync()[1], flat[1]);
      assert.equal(trainable.at(-1)!.dataSync().at(-1), flat.at(-1));
      assert.throws(() => writeFlat(new Float32Array(n - 1), trainable), RangeError);
      const stateFlat = new Float32Array(state.reduce((k, v) => k + v.size, 0)).fill(0.5);
      writeFlat(stateFlat, state);
      assert.deepEqual(flattenInto(state), stateFlat);
      assert.deepEqual(flattenInto([new Float32Array([1, 2]), [3]]), new Float32Array([1, 2, 3]));
    });
  });
});

after(() => {
  assert.equal(tf.memory().numTensors, 0, 'every model disposed');
});
