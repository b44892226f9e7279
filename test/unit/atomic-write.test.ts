import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../src/shared/atomic-write.js';
import { readCheckpoint, writeCheckpoint } from '../../src/shared/checkpoint.js';
import { DiskFullError } from '../../src/shared/errors.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import type { TrainerState } from '../../src/shared/gan/api.js';
import { withTempDir } from '../helpers/cli.js';

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir(fn, 'atomic-');

test('writes strings, buffers and chunk lists; replaces the old file; applies the mode; leaves no temp file', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'f.bin');
    await writeFileAtomic(path, 'hello\n');
    assert.equal(await readFile(path, 'utf8'), 'hello\n');
    await writeFileAtomic(path, Buffer.from([1, 2, 3]));
    assert.deepEqual([...(await readFile(path))], [1, 2, 3]);
    const floats = new Float32Array([1.5, -2, 3.25]);
    await writeFileAtomic(path, [Buffer.from('ab'), new Uint8Array(floats.buffer, 4, 8), new Uint8Array(0)]);
    const got = await readFile(path);
    assert.equal(got.toString('latin1', 0, 2), 'ab');
    assert.deepEqual([...new Float32Array(got.buffer.slice(got.byteOffset + 2, got.byteOffset + 10))], [-2, 3.25]);
    await writeFileAtomic(join(dir, 'secret'), 'k', { mode: 0o600 });
    assert.equal((await stat(join(dir, 'secret'))).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).sort(), ['f.bin', 'secret']);
  });
});

test('writeJsonAtomic writes pretty JSON with a newline and creates the folder', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'a', 'b', 'summary.json');
    await writeJsonAtomic(path, { steps: 3, ok: true });
    assert.equal(await readFile(path, 'utf8'), '{\n  "steps": 3,\n  "ok": true\n}\n');
    assert.deepEqual(await readdir(join(dir, 'a', 'b')), ['summary.json']);
  });
});

test('any other failure removes the temp file and rethrows the original error', async () => {
  await withDir(async (dir) => {
    // rename(2) of a file over a non-empty folder fails (EISDIR/ENOTEMPTY) after the bytes were written.
    const target = join(dir, 'taken');
    await mkdir(target);
    await writeFile(join(target, 'x'), 'x');
    await assert.rejects(writeFileAtomic(target, 'data'), (e: unknown) => {
      assert.ok(!(e instanceof DiskFullError));
      assert.match(String((e as NodeJS.ErrnoException).code), /^E/);
      return true;
    });
    assert.deepEqual(await readdir(dir), ['taken']);
    await assert.rejects(writeFileAtomic(join(dir, 'missing', 'f'), 'data'), { code: 'ENOENT' });
  });
});

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Mounts a tmpfs of `size` on a fresh folder for the duration of fn. */
async function withTinyTmpfs(size: string, fn: (dir: string) => Promise<void>): Promise<void> {
  if (!isRoot()) {
    assert.fail('this test needs root: it mounts a tiny tmpfs (mount -t tmpfs) to fill the disk for real; CI runs as root');
  }
  const dir = await mkdtemp(join(tmpdir(), 'enospc-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  try {
    await fn(dir);
  } finally {
    execFileSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  }
}

test('ENOSPC: DiskFullError naming the path, the old file intact byte-for-byte, no temp file left', async () => {
  await withTinyTmpfs('256k', async (dir) => {
    const path = join(dir, 'data.bin');
    const old = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31) & 0xff));
    await writeFileAtomic(path, old);
    const big = Buffer.alloc(400 * 1024, 7);
    await assert.rejects(writeFileAtomic(path, big), (e: unknown) => {
      assert.ok(e instanceof DiskFullError, `expected DiskFullError, got ${String(e)}`);
      assert.equal(e.code, 'DISTGAN_E_NO_SPACE');
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, /the previous data\.bin is intact/);
      assert.equal((e.cause as NodeJS.ErrnoException).code, 'ENOSPC');
      return true;
    });
    assert.ok((await readFile(path)).equals(old), 'the old file is unchanged');
    assert.deepEqual(await readdir(dir), ['data.bin']);
    // As a chunk list too, and for a name that did not exist before.
    await assert.rejects(writeFileAtomic(join(dir, 'new.bin'), [big.subarray(0, 200 * 1024), big.subarray(0, 200 * 1024)]), (e: unknown) => {
      assert.ok(e instanceof DiskFullError);
      assert.match(e.message, /nothing was written under that name/);
      return true;
    });
    assert.deepEqual(await readdir(dir), ['data.bin']);
  });
});

function state(step: number, n: number): TrainerState {
  const f = (k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.cos(i * k));
  return { step, gWeights: f(1), dWeights: f(2), bnStats: new Float32Array(0), gAdamM: f(3), gAdamV: f(4), dAdamM: f(5), dAdamV: f(6) };
}

const header = (step: number) => ({
  step,
  runId: 'r',
  training: trainingPart(resolveConfig({})),
  model: { kind: 'mlp' },
  modelFingerprint: 'm',
  datasetFingerprint: 'd',
  sampler: { epoch: 0, cursor: 0 },
  rng: { kind: 'counter' as const, seed: 1, step },
});

test('ENOSPC while writing a checkpoint: DISTGAN_E_NO_SPACE, the older checkpoint still loads', async () => {
  await withTinyTmpfs('256k', async (dir) => {
    const ckdir = join(dir, 'checkpoints');
    await writeCheckpoint(ckdir, header(1), state(1, 100), 3);
    await writeFile(join(dir, 'filler'), Buffer.alloc(200 * 1024));
    await assert.rejects(writeCheckpoint(ckdir, header(2), state(2, 4000), 3), (e: unknown) => {
      assert.ok(e instanceof DiskFullError, `expected DiskFullError, got ${String(e)}`);
      assert.equal(e.code, 'DISTGAN_E_NO_SPACE');
      assert.match(e.message, /step-00000002\.ckpt/);
      return true;
    });
    assert.deepEqual(await readdir(ckdir), ['step-00000001.ckpt']);
    assert.equal((await readCheckpoint(dir)).header.step, 1);
  });
});
