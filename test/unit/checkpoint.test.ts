import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generatorTensors, parseCheckpoint, readCheckpoint, resolveCheckpointPath, tensorPlan, writeCheckpoint } from '../../src/shared/checkpoint.js';
import { removeStaleTempFiles } from '../../src/shared/atomic-write.js';
import { CheckpointError, NumericError } from '../../src/shared/errors.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import { TRAINER_STATE_ARRAYS, type TrainerState } from '../../src/shared/gan/api.js';
import { initBackend } from '../../src/shared/compute/backend.js';
import { TfGanTrainer } from '../../src/shared/gan/trainer.js';
import { resolveGanOptions } from '../../src/shared/gan/options.js';
import { parameterCounts, sampleShapeOf, type ModelSpec } from '../../src/shared/models/spec.js';
import { arrayBytes, format2Bytes, headerInput, safetensorsBytes, splitSafetensors, stateFor } from '../helpers/checkpoint-files.js';
import { withTempDir } from '../helpers/cli.js';

function state(step: number): TrainerState {
  const f = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + step));
  return { step, gWeights: f(10, 1), dWeights: f(7, 2), bnStats: f(0, 3), gAdamM: f(10, 4), gAdamV: f(10, 5), dAdamM: f(7, 6), dAdamV: f(7, 7) };
}

const header = (step: number) => ({
  step,
  runId: 'r',
  training: trainingPart(resolveConfig({})),
  model: { kind: 'mlp' },
  modelFingerprint: 'm',
  datasetFingerprint: 'd',
  sampler: { epoch: 0, cursor: step * 64 },
  rng: { kind: 'counter' as const, seed: 1, step },
});

/** A complete, valid format-2 header as JSON, for tests that then break one field. */
function fullHeader(step: number, optimizerStep = step): Record<string, unknown> {
  const s = state(optimizerStep);
  return {
    format: 2,
    step,
    optimizerStep,
    runId: 'r',
    createdAt: '2025-01-01T00:00:00.000Z',
    training: trainingPart(resolveConfig({})),
    model: { kind: 'mlp' },
    modelFingerprint: 'm',
    datasetFingerprint: 'd',
    sampler: { epoch: 0, cursor: step * 64 },
    rng: { kind: 'counter', seed: 1, step },
    arrays: Object.fromEntries(TRAINER_STATE_ARRAYS.map((k) => [k, s[k].length])),
  };
}

/**
 * Bytes of a format-2 file with any header text and a correct trailing digest,
 * so that what is tested is the validation after the digest, not the digest.
 */
const craft = format2Bytes;

/** A file as distgan 0.1 (format 1) wrote it: header.sha256 over the arrays only, no trailer. */
function formatOne(step: number): Buffer {
  const s = state(step);
  const arrays = arrayBytes(s);
  const h = { ...fullHeader(step), format: 1, sha256: createHash('sha256').update(arrays).digest('hex') };
  delete (h as Record<string, unknown>).optimizerStep;
  let json = JSON.stringify(h);
  while ((12 + Buffer.byteLength(json)) % 4 !== 0) json += ' ';
  const prefix = Buffer.alloc(12);
  prefix.write('DGANCKPT', 0, 'latin1');
  prefix.writeUInt32LE(Buffer.byteLength(json), 8);
  return Buffer.concat([prefix, Buffer.from(json), arrays]);
}

function isCheckpointError(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${String(e)}`);
    assert.equal(e.code, 'DISTGAN_E_CHECKPOINT');
    assert.match(e.message, pattern);
    return true;
  };
}

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir(fn, 'ckpt-');

test('round trip is bit-exact, only the newest K are kept, no temp files remain', async () => {
  await withDir(async (dir) => {
    for (const s of [10, 20, 30, 40]) await writeCheckpoint(dir, header(s), state(s), 2);
    assert.deepEqual((await readdir(dir)).sort(), ['step-00000030.ckpt', 'step-00000040.ckpt']);
    const c = await readCheckpoint(dir);
    assert.equal(c.header.step, 40);
    assert.equal(c.header.format, 3);
    assert.deepEqual(c.skipped, []);
    const want = state(40);
    for (const k of TRAINER_STATE_ARRAYS) assert.deepEqual([...c.state[k]], [...want[k]], k);
    assert.equal(c.stateSha256, createHash('sha256').update(arrayBytes(want)).digest('hex'));
  });
});

test('optimizerStep (Adam updates) is stored apart from step (training steps) and restores state.step', async () => {
  await withDir(async (dir) => {
    // Three of 10 steps were skipped by the gradient guard: 7 updates applied.
    const path = await writeCheckpoint(dir, header(10), state(7), 3);
    const c = await readCheckpoint(path);
    assert.equal(c.header.step, 10);
    assert.equal(c.header.optimizerStep, 7);
    assert.equal(c.state.step, 7);
    assert.equal(c.header.rng.step, 10);
    assert.deepEqual([...c.state.gAdamV], [...state(7).gAdamV]);
  });
});

test('truncated, corrupted and foreign files are refused with CheckpointError', async () => {
  await withDir(async (dir) => {
    const path = await writeCheckpoint(dir, header(1), state(1), 3);
    const good = await readFile(path);
    await writeFile(path, good.subarray(0, good.length - 4));
    await assert.rejects(readCheckpoint(path), isCheckpointError(/truncated/));
    await writeFile(path, Buffer.concat([good, Buffer.alloc(4)]));
    await assert.rejects(readCheckpoint(path), isCheckpointError(/truncated or extended/));
    const flipped = Buffer.from(good);
    flipped[flipped.length - 40]! ^= 0x01;
    await writeFile(path, flipped);
    await assert.rejects(readCheckpoint(path), isCheckpointError(/SHA-256/));
    await writeFile(path, 'hello');
    await assert.rejects(readCheckpoint(path), isCheckpointError(/bad magic/));
    await writeFile(path, 'DGANCKPT');
    await assert.rejects(readCheckpoint(path), isCheckpointError(/truncated/));
    // Someone else's safetensors file (no distgan metadata) is named for what it is.
    const f32 = Buffer.from(new Float32Array([1, 2]).buffer);
    await writeFile(path, safetensorsBytes({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32));
    await assert.rejects(readCheckpoint(path), isCheckpointError(/safetensors file without exactly one __metadata__\.sha256 .*not a distgan checkpoint/));
    await assert.rejects(readCheckpoint(join(dir, 'nope')), isCheckpointError(/does not exist/));
  });
});

test('an edited header field is refused even though it is valid JSON (the digest covers the header)', async () => {
  await withDir(async (dir) => {
    const path = await writeCheckpoint(dir, header(10), state(10), 3);
    const good = await readFile(path);
    const text = good.toString('latin1');
    // safetensors metadata values are strings: "step":"10".
    const at = text.indexOf('"step":"10"');
    assert.ok(at > 0);
    const edited = Buffer.from(good);
    edited.write('"step":"12"', at, 'latin1');
    assert.throws(() => parseCheckpoint(edited, path), isCheckpointError(/SHA-256/));
  });
});

test('format 2: odd headers are refused with CheckpointError, never a TypeError', () => {
  const arrays = arrayBytes(state(10));
  const h = fullHeader(10);
  const variant = (patch: (h: Record<string, unknown>) => void): string => {
    const copy = structuredClone(h);
    patch(copy);
    return JSON.stringify(copy);
  };
  const cases: Array<[string, string, RegExp]> = [
    ['null header', 'null', /header is null, not a JSON object/],
    ['array header', '[1,2]', /header is an array/],
    ['number header', '42', /header is 42/],
    ['string header', '"x"', /header is "x"/],
    ['not JSON', '{"format":2,', /not UTF-8 JSON/],
    ['missing key', variant((x) => delete x.runId), /lacks runId/],
    ['unknown key', variant((x) => (x.extra = 1)), /unknown key\(s\) "extra"/],
    ['__proto__ key', JSON.stringify(h).replace(/^\{/, '{"__proto__":{"step":1},'), /unknown key\(s\) "__proto__"/],
    ['format 3 in a DGANCKPT file', variant((x) => (x.format = 3)), /format is 3; a DGANCKPT checkpoint holds format 2/],
    ['step as string', variant((x) => (x.step = '10')), /step is "10", not a non-negative integer/],
    ['negative step', variant((x) => (x.step = -1)), /step is -1/],
    ['fractional optimizerStep', variant((x) => (x.optimizerStep = 1.5)), /optimizerStep is 1.5/],
    ['unsafe step', variant((x) => (x.step = 2 ** 60)), /step is \d+, not a non-negative integer/],
    ['optimizerStep > step', variant((x) => (x.optimizerStep = 11)), /optimizerStep 11 is larger than step 10/],
    ['empty runId', variant((x) => (x.runId = '')), /runId is "", not a non-empty string/],
    ['numeric fingerprint', variant((x) => (x.modelFingerprint = 5)), /modelFingerprint is 5/],
    ['bad date', variant((x) => (x.createdAt = 'yesterday')), /createdAt "yesterday" is not a date/],
    ['training array', variant((x) => (x.training = [])), /training is an array, not an object/],
    ['training nested', variant((x) => ((x.training as Record<string, unknown>).lr = { a: 1 })), /training.lr is an object/],
    ['model null', variant((x) => (x.model = null)), /model is null, not an object/],
    ['sampler missing cursor', variant((x) => (x.sampler = { epoch: 0 })), /sampler lacks cursor/],
    ['sampler extra key', variant((x) => (x.sampler = { epoch: 0, cursor: 0, offset: 1 })), /sampler has unknown key\(s\) "offset"/],
    ['sampler negative', variant((x) => (x.sampler = { epoch: -1, cursor: 0 })), /sampler.epoch is -1/],
    ['rng kind', variant((x) => ((x.rng as Record<string, unknown>).kind = 'mt19937')), /rng.kind is "mt19937", not "counter"/],
    ['rng seed', variant((x) => ((x.rng as Record<string, unknown>).seed = 'one')), /rng.seed is "one", not an integer/],
    ['rng step', variant((x) => ((x.rng as Record<string, unknown>).step = 9)), /rng.step is 9 but step is 10/],
    ['rng string', variant((x) => (x.rng = 'counter')), /rng is "counter", not an object/],
    ['arrays missing key', variant((x) => delete (x.arrays as Record<string, unknown>).bnStats), /arrays lacks bnStats/],
    ['arrays unknown key', variant((x) => ((x.arrays as Record<string, unknown>).extra = 0)), /arrays has unknown key\(s\) "extra"/],
    ['array length string', variant((x) => ((x.arrays as Record<string, unknown>).gWeights = '10')), /arrays.gWeights is "10"/],
    ['moments mismatch', variant((x) => ((x.arrays as Record<string, unknown>).dAdamV = 6)), /arrays.dAdamV is 6 but arrays.dWeights is 7/],
    ['lengths do not add up', variant((x) => ((x.arrays as Record<string, unknown>).bnStats = 1)), /lists 52 floats \(208 bytes\) but the file holds 204/],
  ];
  for (const [name, json, pattern] of cases) {
    assert.throws(() => parseCheckpoint(craft(json, arrays), 'x.ckpt'), isCheckpointError(pattern), name);
  }
  // The unbroken header parses: the cases above fail for their own reason only.
  assert.equal(parseCheckpoint(craft(JSON.stringify(h), arrays), 'x.ckpt').header.step, 10);
});

test('format 2: a header length of zero, past the end, or leaving no room is refused', () => {
  const arrays = arrayBytes(state(3));
  const json = JSON.stringify(fullHeader(3));
  assert.throws(() => parseCheckpoint(craft(json, arrays, { hlen: 0 }), 'x.ckpt'), isCheckpointError(/empty header/));
  assert.throws(() => parseCheckpoint(craft(json, arrays, { hlen: 0xffffffff }), 'x.ckpt'), isCheckpointError(/header length of 4294967295 bytes, more than/));
  const file = craft(json, arrays);
  const roomFor = file.length - 12 - 32;
  assert.throws(() => parseCheckpoint(craft(json, arrays, { hlen: roomFor + 4 }), 'x.ckpt'), isCheckpointError(/more than the \d+ bytes the file has room for/));
  const padded = file.readUInt32LE(8);
  assert.throws(() => parseCheckpoint(craft(json, arrays, { hlen: padded + 2 }), 'x.ckpt'), isCheckpointError(/leaves the arrays unaligned/));
});

test('non-finite state: refused on write (nothing written, no temp file) and on read', async () => {
  await withDir(async (dir) => {
    await writeCheckpoint(dir, header(1), state(1), 5);
    const before = (await readdir(dir)).sort();
    const bad = state(2);
    bad.gWeights[3] = NaN;
    await assert.rejects(writeCheckpoint(dir, header(2), bad, 5), (e: unknown) => {
      assert.ok(e instanceof NumericError);
      assert.equal(e.code, 'DISTGAN_E_NUMERIC');
      assert.match(e.message, /gWeights\[3\] is NaN/);
      return true;
    });
    const inf = state(2);
    inf.dAdamV[6] = -Infinity;
    await assert.rejects(writeCheckpoint(dir, header(2), inf, 5), /dAdamV\[6\] is -Infinity/);
    assert.deepEqual((await readdir(dir)).sort(), before);
    assert.equal((await readCheckpoint(dir)).header.step, 1);

    const onDisk = state(4);
    onDisk.gAdamM[2] = Infinity;
    assert.throws(() => parseCheckpoint(craft(JSON.stringify(fullHeader(4)), arrayBytes(onDisk)), 'x.ckpt'), isCheckpointError(/gAdamM\[2\] is Infinity/));
  });
});

test('format 1 files (header not covered by the hash) are refused, not loaded', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'step-00000005.ckpt');
    await writeFile(path, formatOne(5));
    await assert.rejects(readCheckpoint(path), isCheckpointError(/older distgan \(checkpoint format 1\), whose header is not covered by its hash/));
  });
});

async function corrupt(path: string): Promise<void> {
  const buf = await readFile(path);
  buf[Math.floor(buf.length / 2)]! ^= 0x10;
  await writeFile(path, buf);
}

test('a run folder whose newest checkpoint is corrupt: the error names the intact one; latestValid loads it', async () => {
  await withDir(async (run) => {
    const ckdir = join(run, 'checkpoints');
    for (const s of [10, 20, 30]) await writeCheckpoint(ckdir, header(s), state(s), 5);
    await corrupt(join(ckdir, 'step-00000030.ckpt'));

    await assert.rejects(
      readCheckpoint(run),
      isCheckpointError(/step-00000030\.ckpt failed its SHA-256 check.*checkpoints\/step-00000020\.ckpt \(step 20\) is intact: continue from it with --resume-latest-valid, or --resume .*step-00000020\.ckpt/),
    );
    const c = await readCheckpoint(run, { latestValid: true });
    assert.equal(c.header.step, 20);
    assert.deepEqual(c.skipped.map((s) => s.path), [join(ckdir, 'step-00000030.ckpt')]);
    assert.match(c.skipped[0]!.reason, /SHA-256/);
    // The checkpoints folder itself works the same way.
    assert.equal((await readCheckpoint(ckdir, { latestValid: true })).header.step, 20);

    // A direct file path never falls back.
    await assert.rejects(readCheckpoint(join(ckdir, 'step-00000030.ckpt'), { latestValid: true }), isCheckpointError(/SHA-256/));

    await corrupt(join(ckdir, 'step-00000020.ckpt'));
    const older = await readCheckpoint(run, { latestValid: true });
    assert.equal(older.header.step, 10);
    assert.deepEqual(older.skipped.map((s) => s.path), [join(ckdir, 'step-00000030.ckpt'), join(ckdir, 'step-00000020.ckpt')]);
    await assert.rejects(readCheckpoint(run), isCheckpointError(/checkpoints\/step-00000010\.ckpt \(step 10\) is intact/));

    await corrupt(join(ckdir, 'step-00000010.ckpt'));
    await assert.rejects(readCheckpoint(run), isCheckpointError(/none of the 2 older one\(s\) is intact either/));
    await assert.rejects(readCheckpoint(run, { latestValid: true }), isCheckpointError(/none of the 2 older one\(s\) is intact either/));
  });
});

/** Starts a child process that lives until killed, and one that has already exited. */
async function pids(): Promise<{ live: number; dead: number; stop: () => void }> {
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)'], { stdio: 'ignore' });
  const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => dead.once('exit', r));
  assert.ok(live.pid !== undefined && dead.pid !== undefined);
  return { live: live.pid, dead: dead.pid, stop: () => live.kill('SIGKILL') };
}

test('temp files of dead writers are removed; a live foreign writer\'s are kept; listing ignores them', async () => {
  const p = await pids();
  try {
    await withDir(async (dir) => {
      await writeCheckpoint(dir, header(1), state(1), 5);
      const deadOld = `step-00000050.ckpt.tmp-${p.dead}`;
      const deadNew = `step-00000060.ckpt.tmp-${p.dead}-a1b2c3`;
      const live = `step-00000070.ckpt.tmp-${p.live}-d4e5f6`;
      const own = `summary.json.tmp-${process.pid}-0a0b0c`;
      for (const n of [deadOld, deadNew, live, own]) await writeFile(join(dir, n), 'partial');
      await mkdir(join(dir, `folder.tmp-${p.dead}`));

      // Temp files are never taken for checkpoints.
      assert.equal((await readCheckpoint(dir)).header.step, 1);

      const removed = await removeStaleTempFiles(dir);
      assert.deepEqual(removed.sort(), [deadOld, deadNew, own].sort());
      assert.deepEqual((await readdir(dir)).sort(), [`folder.tmp-${p.dead}`, live, 'step-00000001.ckpt'].sort());
      assert.deepEqual(await removeStaleTempFiles(join(dir, 'missing')), []);

      // writeCheckpoint cleans up stale temp files of its own folder too.
      await writeFile(join(dir, deadNew), 'partial');
      await writeCheckpoint(dir, header(2), state(2), 5);
      assert.deepEqual((await readdir(dir)).sort(), [`folder.tmp-${p.dead}`, live, 'step-00000001.ckpt', 'step-00000002.ckpt'].sort());
    });
  } finally {
    p.stop();
  }
});

test('more than 99,999,999 steps: checkpoints are ordered by step, not by name', async () => {
  await withDir(async (dir) => {
    await writeCheckpoint(dir, header(99_999_999), state(1), 5);
    await writeCheckpoint(dir, header(100_000_000), state(1), 5);
    assert.equal((await readCheckpoint(dir)).header.step, 100_000_000);
  });
});

// ---------------------------------------------------------------------------
// Format 3: safetensors

const MNIST_BN: ModelSpec = { kind: 'dcgan', resolution: 28, channels: 1, latentDim: 100, width: 0.25, batchNorm: true };
const RGB_NO_BN: ModelSpec = { kind: 'dcgan', resolution: 32, channels: 3, latentDim: 16, width: 0.1, batchNorm: false };
const BIG_BN: ModelSpec = { kind: 'dcgan', resolution: 64, channels: 3, latentDim: 20, width: 0.1, batchNorm: true };
const MLP: ModelSpec = { kind: 'mlp', latentDim: 8, hidden: 16, depth: 2, outputDim: 2 };

test('format 3 is a safetensors file: 8-byte length, space-padded JSON header starting with {, string metadata, tensors back to back to the end', async () => {
  await withDir(async (dir) => {
    const path = await writeCheckpoint(dir, headerInput(5, MNIST_BN as unknown as Record<string, unknown>), stateFor(MNIST_BN, 4), 3);
    const file = await readFile(path);
    const { header, data, n } = splitSafetensors(file);
    assert.equal(n % 8, 0, 'the header is padded so the tensors start 8-aligned');
    assert.equal(file[8], 0x7b, 'the header starts with {');
    assert.match(file.toString('latin1', 8, 8 + n), /\} *$/, 'padded with spaces only');
    const meta = header['__metadata__'] as Record<string, unknown>;
    assert.ok(Object.values(meta).every((v) => typeof v === 'string'), 'every metadata value is a string');
    assert.equal(meta['format'], '3');
    assert.equal(meta['step'], '5');
    assert.equal(meta['optimizerStep'], '4');
    assert.deepEqual(JSON.parse(meta['model'] as string), MNIST_BN);
    assert.match(meta['sha256'] as string, /^[0-9a-f]{64}$/);
    // The digest is the SHA-256 of the file with its own value as 64 zeros.
    const zeroed = Buffer.from(file);
    zeroed.write('0'.repeat(64), file.indexOf(meta['sha256'] as string, 8, 'latin1'), 'latin1');
    assert.equal(createHash('sha256').update(zeroed).digest('hex'), meta['sha256']);
    let at = 0;
    const tensors = Object.entries(header).filter(([k]) => k !== '__metadata__') as Array<[string, { dtype: string; shape: number[]; data_offsets: [number, number] }]>;
    for (const [name, t] of tensors.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
      assert.equal(t.dtype, 'F32', name);
      assert.equal(t.data_offsets[0], at, `${name} starts where the previous tensor ends`);
      assert.equal(t.data_offsets[1] - t.data_offsets[0], 4 * t.shape.reduce((a, b) => a * b, 1), `${name}: bytes = 4 × its shape`);
      at = t.data_offsets[1];
    }
    assert.equal(at, data.length, 'the last tensor ends at the end of the file');
    // G per layer in PyTorch's names and shapes, the rest flat; no flat gWeights/bnStats duplicate.
    const c = parameterCounts(MNIST_BN);
    assert.deepEqual(header['generator.dense.weight'], { dtype: 'F32', shape: [7 * 7 * 32, 100], data_offsets: [0, 4 * 1568 * 100] });
    assert.deepEqual((header['generator.convt1.weight'] as { shape: number[] }).shape, [32, 16, 5, 5]);
    assert.deepEqual((header['generator.convt2.weight'] as { shape: number[] }).shape, [16, 1, 5, 5]);
    assert.deepEqual((header['generator.bn1.running_var'] as { shape: number[] }).shape, [16]);
    assert.equal(header['gWeights'], undefined);
    assert.equal(header['bnStats'], undefined);
    assert.deepEqual((header['dAdamV'] as { shape: number[] }).shape, [c.d]);
    assert.equal(file.length, 8 + n + 4 * (3 * c.g + 3 * c.d + c.bnStats), 'the file is the size of the state: nothing is stored twice');
  });
});

test('G split per layer (PyTorch layouts) is rebuilt bit-exactly on load, for DCGANs with and without BN and for the MLP', async () => {
  await withDir(async (dir) => {
    for (const [i, spec] of [MNIST_BN, RGB_NO_BN, BIG_BN, MLP].entries()) {
      const want = stateFor(spec, 3, i);
      const path = await writeCheckpoint(join(dir, String(i)), headerInput(3, spec as unknown as Record<string, unknown>), want, 1);
      const c = await readCheckpoint(path);
      for (const k of TRAINER_STATE_ARRAYS) assert.ok(Buffer.from(c.state[k].buffer).equals(Buffer.from(want[k].buffer)), `${spec.kind} ${i}: ${k} round-trips bit-exactly`);
      assert.equal(c.stateSha256, createHash('sha256').update(arrayBytes(want)).digest('hex'));
      const names = tensorPlan(spec, c.header.arrays).map((e) => e.name);
      assert.ok(names.every((n) => n.startsWith('generator.') || ['dWeights', 'gAdamM', 'gAdamV', 'dAdamM', 'dAdamV'].includes(n)), names.join(', '));
    }
    // The MLP's G, as nn.Linear holds it: weight [out, in] = the tfjs kernel [in, out] transposed.
    const mlpFile = splitSafetensors(await readFile(join(dir, '3', 'step-00000003.ckpt')));
    const w = mlpFile.header['generator.dense0.weight'] as { shape: number[]; data_offsets: [number, number] };
    assert.deepEqual(w.shape, [16, 8]);
    const stored = new Float32Array(mlpFile.data.buffer.slice(mlpFile.data.byteOffset + w.data_offsets[0], mlpFile.data.byteOffset + w.data_offsets[1]));
    const kernel = stateFor(MLP, 3, 3).gWeights; // tfjs [in 8, out 16], row-major
    assert.equal(stored[2 * 8 + 5], kernel[5 * 16 + 2], 'weight[out 2][in 5] = kernel[in 5][out 2]');
  });
});

test('the per-layer plan follows the trainer\'s own variable layout (order, role, size), so the split cannot drift', async () => {
  await initBackend('cpu', { log: () => {} });
  const suffix: Record<string, string> = { kernel: 'weight', bias: 'bias', gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var' };
  for (const spec of [MNIST_BN, RGB_NO_BN, BIG_BN, MLP, { ...MNIST_BN, width: 1 } as ModelSpec]) {
    const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: 1 }), sampleShapeOf(spec));
    try {
      const infos = [...trainer.layout.g, ...trainer.layout.bn];
      const tensors = generatorTensors(spec);
      assert.ok(tensors !== undefined, `${JSON.stringify(spec)}: G is stored per layer`);
      assert.equal(tensors.length, infos.length, `${JSON.stringify(spec)}: one tensor per variable`);
      infos.forEach((info, i) => {
        const t = tensors[i]!;
        const layer = trainer.generator.layers[info.layer]!.name.replace(/^g_/, '');
        assert.equal(t.name, `generator.${layer}.${suffix[info.role]}`, `variable ${i}`);
        assert.equal(t.shape.reduce((a, b) => a * b, 1), info.size, t.name);
        assert.equal(t.view.reduce((a, b) => a * b, 1), info.size, t.name);
        if (info.shape.length === 4) assert.deepEqual(t.view, info.shape, `${t.name}: the tfjs kernel is viewed as it is`);
        else if (info.shape.length === 2) assert.equal(t.view[0], info.shape[0], `${t.name}: a dense kernel keeps its inputs first`);
      });
    } finally {
      trainer.dispose();
    }
  }
});

test('format 2 files (distgan 0.2) still load: same state and stateSha256 as the format-3 file of that state', async () => {
  await withDir(async (dir) => {
    const want = stateFor(MNIST_BN, 9);
    const v3 = await readCheckpoint(await writeCheckpoint(join(dir, 'v3'), headerInput(9, MNIST_BN as unknown as Record<string, unknown>), want, 1));
    const h2 = { ...v3.header, format: 2 };
    const old = join(dir, 'checkpoints', 'step-00000009.ckpt');
    await mkdir(join(dir, 'checkpoints'));
    await writeFile(old, format2Bytes(JSON.stringify(h2), arrayBytes(want)));
    const v2 = await readCheckpoint(dir);
    assert.equal(v2.header.format, 2);
    assert.equal(v2.header.step, 9);
    assert.equal(v2.state.step, 9);
    assert.equal(v2.stateSha256, v3.stateSha256);
    for (const k of TRAINER_STATE_ARRAYS) assert.deepEqual(v2.state[k], v3.state[k], k);
  });
});

test('format 3: odd headers, metadata and tensor entries are refused with CheckpointError after a matching digest', async () => {
  await withDir(async (dir) => {
    const path = await writeCheckpoint(dir, headerInput(10, MNIST_BN as unknown as Record<string, unknown>), stateFor(MNIST_BN, 10), 1);
    const { header, data } = splitSafetensors(await readFile(path));
    const variant = (patch: (h: Record<string, any>) => void, opts: { extraSpaces?: number; n?: number } = {}): Buffer => {
      const copy = structuredClone(header) as Record<string, any>;
      patch(copy);
      return safetensorsBytes(copy, data, opts);
    };
    const meta = (k: string, v: unknown) => (h: Record<string, any>) => void (h['__metadata__'][k] = v);
    const arrays = JSON.parse((header['__metadata__'] as Record<string, string>)['arrays']!) as Record<string, number>;
    const cases: Array<[string, Buffer, RegExp]> = [
      ['metadata number', variant(meta('step', 10)), /__metadata__\.step is 10, not a string/],
      ['metadata missing key', variant((h) => delete h['__metadata__'].runId), /__metadata__ lacks runId/],
      ['metadata unknown key', variant(meta('format_name', 'pt')), /__metadata__ has unknown key\(s\) "format_name"/],
      ['metadata not an object', variant((h) => (h['__metadata__'] = ['x'])), /without exactly one __metadata__\.sha256/],
      ['non-canonical number', variant(meta('step', '010')), /step is "010", not a non-negative integer/],
      ['exponent number', variant(meta('optimizerStep', '1e1')), /optimizerStep is "1e1"/],
      ['format 2 in safetensors', variant(meta('format', '2')), /format is 2; a safetensors checkpoint holds format 3/],
      ['training not JSON', variant(meta('training', '{lr:1}')), /__metadata__\.training is not JSON/],
      ['sampler wrong', variant(meta('sampler', '{"epoch":0}')), /sampler lacks cursor/],
      ['arrays lie', variant(meta('arrays', JSON.stringify({ ...arrays, dWeights: 5, dAdamM: 5, dAdamV: 5 }))), /tensor dWeights has shape \[\d+\], not \[5\]/],
      ['unknown tensor', variant((h) => (h['extra'] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] })), /the header has unknown key\(s\) "extra"/],
      ['missing tensor', variant((h) => delete h['generator.bn1.running_var']), /the header lacks generator\.bn1\.running_var/],
      ['flat gWeights instead of split', variant((h) => (h['gWeights'] = h['generator.dense.weight'])), /unknown key\(s\) "gWeights"/],
      ['dtype', variant((h) => (h['dAdamV'].dtype = 'F16')), /tensor dAdamV has dtype "F16", not "F32"/],
      ['shape', variant((h) => (h['generator.dense.weight'].shape = [100, 1568])), /generator\.dense\.weight has shape \[100,1568\], not \[1568, 100\]/],
      ['offsets', variant((h) => (h['dAdamV'].data_offsets = [0, h['dAdamV'].data_offsets[1] - h['dAdamV'].data_offsets[0]])), /tensor dAdamV has data_offsets \[0,\d+\], not \[\d+, \d+\]/],
      ['extra tensor key', variant((h) => (h['dAdamV'].extra = 1)), /tensor dAdamV has unknown key\(s\) "extra"/],
      ['__proto__ key', (() => {
        const b = variant(() => undefined);
        return safetensorsBytes(JSON.parse(b.toString('utf8', 8, 8 + Number(b.readBigUInt64LE(0))).replace(/^\{/, '{"__proto__":{"a":1},')), data);
      })(), /unknown key\(s\) "__proto__"/],
      ['header not a multiple of 8', variant(() => undefined, { extraSpaces: 4 }), /header length of \d+ bytes, not a multiple of 8, which leaves the tensors unaligned/],
      ['not JSON under a good digest', (() => {
        const b = variant(() => undefined);
        const n = Number(b.readBigUInt64LE(0));
        b.write(']', 8 + n - 1, 'latin1'); // a padding space made into garbage…
        const zeroed = Buffer.from(b);
        const at = b.indexOf('"sha256":"', 8, 'latin1') + 10;
        zeroed.write('0'.repeat(64), at, 'latin1');
        b.write(createHash('sha256').update(zeroed).digest('hex'), at, 'latin1'); // …and the digest redone
        return b;
      })(), /header that is not UTF-8 JSON/],
      ['length past the end', variant(() => undefined, { n: 2 ** 40 }), /header length of 1099511627776 bytes, more than/],
    ];
    for (const [name, bytes, pattern] of cases) {
      assert.throws(() => parseCheckpoint(bytes, 'x.ckpt'), isCheckpointError(pattern), name);
    }
    // The unbroken header, re-encoded the same way, parses: each case fails for its own reason.
    assert.equal(parseCheckpoint(variant(() => undefined), 'x.ckpt').header.step, 10);
    // A second "sha256" key is refused, even with a digest that matches the first.
    const twice = variant(() => undefined);
    const text = twice.toString('latin1');
    assert.throws(
      () => parseCheckpoint(Buffer.from(text.replace('"runId":"r"', '"runId":"r","sha256":"' + 'f'.repeat(64) + '"'), 'latin1'), 'x.ckpt'),
      isCheckpointError(/without exactly one __metadata__\.sha256/),
    );
  });
});

test('format 3: a NaN stored in a tensor is refused, naming the tensor and index', async () => {
  await withDir(async (dir) => {
    const path = await writeCheckpoint(dir, headerInput(2, MNIST_BN as unknown as Record<string, unknown>), stateFor(MNIST_BN, 2), 1);
    const { header, data } = splitSafetensors(await readFile(path));
    const t = header['generator.convt1.weight'] as { data_offsets: [number, number] };
    const bad = Buffer.from(data);
    bad.writeFloatLE(NaN, t.data_offsets[0] + 4 * 7);
    assert.throws(() => parseCheckpoint(safetensorsBytes(structuredClone(header), bad), 'x.ckpt'), isCheckpointError(/generator\.convt1\.weight\[7\] is NaN/));
  });
});

test('step-N.safetensors names are listed, resolved, pruned and fallen back over like step-N.ckpt', async () => {
  await withDir(async (run) => {
    const ckdir = join(run, 'checkpoints');
    for (const s of [10, 20]) await writeCheckpoint(ckdir, header(s), state(s), 5);
    // A user's copy under the other name, newer.
    await writeFile(join(ckdir, 'step-00000030.safetensors'), await readFile(join(ckdir, 'step-00000020.ckpt')));
    assert.equal(await resolveCheckpointPath(run), join(ckdir, 'step-00000030.safetensors'));
    // Its content says step 20, and it verifies: the file, not its name, is believed.
    assert.equal((await readCheckpoint(run)).header.step, 20);
    await corrupt(join(ckdir, 'step-00000030.safetensors'));
    await assert.rejects(readCheckpoint(run), isCheckpointError(/step-00000030\.safetensors failed its SHA-256 check.*step-00000020\.ckpt \(step 20\) is intact/));
    assert.equal((await readCheckpoint(run, { latestValid: true })).header.step, 20);
    // Pruning counts both names: keep 2 of the three.
    await writeCheckpoint(ckdir, header(40), state(40), 2);
    assert.deepEqual((await readdir(ckdir)).sort(), ['step-00000030.safetensors', 'step-00000040.ckpt']);
  });
});
