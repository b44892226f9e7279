/**
 * A distgan checkpoint is a safetensors file that PyTorch users can load G
 * from directly: a real run's checkpoint is read by a few lines of Python
 * with no safetensors package (test/helpers/torch_generator_from_checkpoint.py:
 * struct + json + torch.frombuffer, digest checked), its generator.* tensors
 * go into bench/torch_dcgan.py's Generator with load_state_dict(strict=True),
 * and in eval mode (BN on the moving statistics) it computes what distgan's
 * TfGanTrainer.generate computes for the same z: max |difference| ≤ 1e-5 on
 * outputs in [-1, 1]. Two more model shapes (no BN with biases, RGB at 32 px;
 * BN at 64 px with random moving statistics) are written from in-process
 * trainers. Needs Debian's python3-torch under /usr/bin/python3: without it
 * the test fails naming the package (CI installs it); it never skips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, runCli, tempDir } from '../helpers/cli.js';
import { readCheckpoint, writeCheckpoint, type Checkpoint } from '../../src/shared/checkpoint.js';
import { initBackend } from '../../src/shared/compute/backend.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import { TfGanTrainer } from '../../src/shared/gan/trainer.js';
import { resolveGanOptions } from '../../src/shared/gan/options.js';
import { sampleShapeOf, validateModelSpec, type DcganSpec } from '../../src/shared/models/spec.js';
import { mulberry32 } from '../helpers/fuzz.js';

const PYTHON = '/usr/bin/python3';
const HELPER = join(ROOT, 'test', 'helpers', 'torch_generator_from_checkpoint.py');
/** Largest |distgan − PyTorch| allowed on any output value (outputs are tanh, in [-1, 1]). */
const MAX_ABS = 1e-5;
const SAMPLES = 8;

/** Fails (never skips) when PyTorch is missing, naming the Debian package. */
function requireTorch(): void {
  const r = spawnSync(PYTHON, ['-c', 'import numpy, torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = r.error !== undefined ? r.error.message : (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`);
    assert.fail(`this test needs PyTorch under ${PYTHON} (${why}): install Debian's python3-torch (sudo apt-get install -y python3-torch); CI installs it`);
  }
}


interface Comparison {
  maxAbs: number;
  relL2: number;
  loaded: { generatorTensors: string[]; otherTensors: string[]; outputShape: number[] };
}

/** distgan's G (wasm, TfGanTrainer.setState + generate) and PyTorch's on the same z. */
async function compare(ckpt: Checkpoint, dir: string, seed: number): Promise<Comparison> {
  const spec = ckpt.header.model as unknown;
  validateModelSpec(spec);
  const r = mulberry32(seed);
  // Fixed z, Box–Muller from the seeded uniform.
  const z = Float32Array.from({ length: SAMPLES * spec.latentDim }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: 1 }), sampleShapeOf(spec));
  let ours: Float32Array;
  try {
    trainer.setState(ckpt.state);
    ours = trainer.generate(z, SAMPLES);
  } finally {
    trainer.dispose();
  }
  const zFile = join(dir, `z-${seed}.f32`);
  const outFile = join(dir, `out-${seed}.f32`);
  await writeFile(zFile, new Uint8Array(z.buffer));
  const py = spawnSync(PYTHON, [HELPER, ckpt.path, zFile, String(SAMPLES), outFile], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(py.status, 0, `${HELPER} failed: ${py.stderr}`);
  const bytes = await readFile(outFile);
  const theirs = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  assert.equal(theirs.length, ours.length, 'PyTorch produced as many values as distgan');
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = ours[i]! - theirs[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(d));
    num += d * d;
    den += ours[i]! * ours[i]!;
  }
  return { maxAbs, relL2: Math.sqrt(num / den), loaded: JSON.parse(py.stdout.trim().split('\n').pop()!) as Comparison['loaded'] };
}

test('PyTorch loads G from a distgan checkpoint without the safetensors package and matches distgan within 1e-5', { timeout: 300_000 }, async (t) => {
  requireTorch();
  const dir = await tempDir('distgan-st-torch-');
  try {
    const run = join(dir, 'run');
    const launch = await runCli(
      ['launch', '--workers', '1', '--dataset', 'mnist', '--model', 'dcgan', '--width', '0.25', '--steps', '3', '--backend', 'wasm', '--metrics-port', '0', '--sample-every', '0', '--out', run],
      { timeoutMs: 180_000 },
    );
    assert.equal(launch.code, 0, launch.stderr.slice(-2000));
    await initBackend('wasm', { log: () => {} });

    // 1. The run's own checkpoint (BN, moving statistics after 3 steps).
    const trained = await readCheckpoint(run);
    assert.equal(trained.header.format, 3);
    assert.equal(trained.header.step, 3);
    const bn = trained.state.bnStats;
    assert.ok(bn.some((v, i) => i < bn.length / 2 && v !== 0), 'the moving means have moved, so their mapping is exercised');
    const a = await compare(trained, dir, 11);
    t.diagnostic(`trained DCGAN-MNIST width 0.25 (BN): max |Δ| ${a.maxAbs.toExponential(2)}, relative L2 ${a.relL2.toExponential(2)}`);
    assert.deepEqual(a.loaded.generatorTensors, [
      'bn0.bias', 'bn0.running_mean', 'bn0.running_var', 'bn0.weight',
      'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.weight',
      'convt1.weight', 'convt2.bias', 'convt2.weight', 'dense.weight',
    ]);
    assert.deepEqual(a.loaded.otherTensors, ['dAdamM', 'dAdamV', 'dWeights', 'gAdamM', 'gAdamV']);
    assert.deepEqual(a.loaded.outputShape, [SAMPLES, 1, 28, 28]);
    assert.ok(a.maxAbs <= MAX_ABS, `max |distgan − PyTorch| = ${a.maxAbs}`);

    // 2 and 3: other shapes, from in-process trainers with perturbed state.
    const specs: DcganSpec[] = [
      { kind: 'dcgan', resolution: 32, channels: 3, latentDim: 16, width: 0.1, batchNorm: false },
      { kind: 'dcgan', resolution: 64, channels: 3, latentDim: 20, width: 0.1, batchNorm: true },
    ];
    for (const [i, spec] of specs.entries()) {
      const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: 5 + i }), sampleShapeOf(spec));
      const state = trainer.getState();
      trainer.dispose();
      const r = mulberry32(100 + i);
      for (let j = 0; j < state.gWeights.length; j++) state.gWeights[j] = state.gWeights[j]! + (r() - 0.5) * 0.2;
      // Moving statistics: means, then variances, per BN layer; any positive variance will do.
      for (let j = 0; j < state.bnStats.length; j++) state.bnStats[j] = 0.3 + r();
      const path = await writeCheckpoint(
        join(dir, `fresh-${i}`),
        {
          step: 0,
          runId: `fresh-${i}`,
          training: trainingPart(resolveConfig({})),
          model: spec as unknown as Record<string, unknown>,
          modelFingerprint: 'm',
          datasetFingerprint: 'd',
          sampler: { epoch: 0, cursor: 0 },
          rng: { kind: 'counter', seed: 1, step: 0 },
        },
        state,
        1,
      );
      const c = await compare(await readCheckpoint(path), dir, 20 + i);
      t.diagnostic(`${spec.resolution} px × ${spec.channels}, width ${spec.width}, BN ${spec.batchNorm}: max |Δ| ${c.maxAbs.toExponential(2)}, relative L2 ${c.relL2.toExponential(2)}`);
      assert.deepEqual(c.loaded.outputShape, [SAMPLES, 3, spec.resolution, spec.resolution]);
      if (!spec.batchNorm) assert.ok(c.loaded.generatorTensors.includes('dense.bias') && c.loaded.generatorTensors.includes('convt1.bias'));
      assert.ok(c.maxAbs <= MAX_ABS, `${spec.resolution} px: max |distgan − PyTorch| = ${c.maxAbs}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
