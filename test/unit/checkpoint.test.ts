import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCheckpoint, readCheckpoint, writeCheckpoint } from '../../src/shared/checkpoint.js';
import { removeStaleTempFiles } from '../../src/shared/atomic-write.js';
import { CheckpointError, NumericError } from '../../src/shared/errors.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import { TRAINER_STATE_ARRAYS, type TrainerState } from '../../src/shared/gan/api.js';

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

function arrayBytes(s: TrainerState): Buffer {
  return Buffer.concat(TRAINER_STATE_ARRAYS.map((k) => Buffer.from(s[k].buffer, s[k].byteOffset, s[k].byteLength)));
}

/**
 * Bytes of a format-2 file with any header text and a correct trailing digest,
 * so that what is tested is the validation after the digest, not the digest.
 */
function craft(headerJson: string, arrays: Buffer, opts: { hlen?: number } = {}): Buffer {
  let json = headerJson;
  while ((12 + Buffer.byteLength(json)) % 4 !== 0) json += ' ';
  const prefix = Buffer.alloc(12);
  prefix.write('DGANCKPT', 0, 'latin1');
  prefix.writeUInt32LE(opts.hlen ?? Buffer.byteLength(json), 8);
  const body = Buffer.concat([prefix, Buffer.from(json), arrays]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

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

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('round trip is bit-exact, only the newest K are kept, no temp files remain', async () => {
  await withDir(async (dir) => {
    for (const s of [10, 20, 30, 40]) await writeCheckpoint(dir, header(s), state(s), 2);
    assert.deepEqual((await readdir(dir)).sort(), ['step-00000030.ckpt', 'step-00000040.ckpt']);
    const c = await readCheckpoint(dir);
    assert.equal(c.header.step, 40);
    assert.equal(c.header.format, 2);
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
    await assert.rejects(readCheckpoint(join(dir, 'nope')), isCheckpointError(/does not exist/));
  });
});

test('an edited header field is refused even though it is valid JSON (the digest covers the header)', async () => {
  await withDir(async (dir) => {
    const path = await writeCheckpoint(dir, header(10), state(10), 3);
    const good = await readFile(path);
    const text = good.toString('latin1');
    const at = text.indexOf('"step":10');
    assert.ok(at > 0);
    const edited = Buffer.from(good);
    edited.write('"step":12', at, 'latin1');
    assert.throws(() => parseCheckpoint(edited, path), isCheckpointError(/SHA-256/));
  });
});

test('odd headers are refused with CheckpointError, never a TypeError', () => {
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
    ['format 3', variant((x) => (x.format = 3)), /format is 3; this distgan reads format 2/],
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

test('a header length of zero, past the end, or leaving no room is refused', () => {
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
