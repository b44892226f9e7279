/**
 * Fingerprints of prepared datasets, as the join handshake compares them:
 * equal data → equal fingerprints (whatever the sharding or the time of
 * prepare); one byte of difference → different fingerprints; a copy damaged
 * after prepare is caught by a verified open. Also: openDataset's dispatch and
 * its message for a reference it does not understand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError } from '../../src/shared/errors.js';
import { PackedWriter } from '../../src/shared/data/prepare/writer.js';
import { openDataset } from '../../src/shared/data/open.js';

const SHAPE: [number, number, number] = [8, 8, 3];
const RB = 8 * 8 * 3;

async function write(dir: string, n: number, shardSize: number, tweak?: { sample: number; byte: number }): Promise<void> {
  await mkdir(dir, { recursive: true });
  const w = await PackedWriter.create(dir, { shape: SHAPE, shardSize });
  for (let i = 0; i < n; i++) {
    const s = Uint8Array.from({ length: RB }, (_, k) => (i * 31 + k * 17) & 0xff);
    if (tweak?.sample === i) s[tweak.byte] = s[tweak.byte]! ^ 0x01;
    await w.append(s);
  }
  await w.finish();
}

async function fingerprintOf(dir: string, opts = {}): Promise<string> {
  const ds = await openDataset(dir, opts);
  try {
    return ds.fingerprint;
  } finally {
    await ds.close();
  }
}

test('equal data gives equal fingerprints; one changed byte gives a different one', async () => {
  const root = await mkdtemp(join(tmpdir(), 'distgan-fp-'));
  try {
    await write(join(root, 'a'), 300, 100);
    await write(join(root, 'a-again'), 300, 100);
    await write(join(root, 'a-resharded'), 300, 7);
    await write(join(root, 'b'), 300, 100, { sample: 123, byte: 77 });
    const a = await fingerprintOf(join(root, 'a'));
    assert.match(a, /^300:sha256:[0-9a-f]{64}$/);
    // createdAt differs between the two writes; it is not part of the fingerprint.
    assert.equal(await fingerprintOf(join(root, 'a-again')), a);
    assert.equal(await fingerprintOf(join(root, 'a-resharded')), a);
    const b = await fingerprintOf(join(root, 'b'));
    assert.notEqual(b, a);
    assert.equal(b.split(':')[0], '300');

    // A copy with one shard byte changed after prepare: the
    // cheap open trusts index.json; the verified open refuses it by name.
    const damaged = join(root, 'a-damaged');
    await cp(join(root, 'a'), damaged, { recursive: true });
    const fh = await open(join(damaged, 'shard-00002.bin'), 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, 5 * RB + 3);
    await fh.close();
    await assert.rejects(fingerprintOf(damaged, { verify: true }), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.match(e.message, /shard-00002\.bin has SHA-256 .* the copy is corrupt or was modified after prepare/);
      return true;
    });
    assert.equal(await fingerprintOf(join(root, 'a'), { verify: true }), a);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('openDataset dispatches names and directories and lists the accepted forms otherwise', async () => {
  const ring = await openDataset('ring8');
  assert.deepEqual([...ring.shape], [2]);
  await ring.close();

  const root = await mkdtemp(join(tmpdir(), 'distgan-open-'));
  try {
    await assert.rejects(openDataset(join(root, 'absent')), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.match(e.message, /'mnist', 'ring8', 'grid25', or a directory made by `distgan prepare`/);
      return true;
    });
    await assert.rejects(openDataset('cifar10'), /neither a known name nor an existing directory/);
    const file = join(root, 'train-images-idx3-ubyte');
    await writeFile(file, 'x');
    await assert.rejects(openDataset(file), /is a file; .*distgan prepare --input FILE\|DIR/);
    await assert.rejects(openDataset(root), /not a prepared dataset: index\.json is missing/);
    await write(join(root, 'ds'), 10, 10);
    const ds = await openDataset(join(root, 'ds'), { flip: true, seed: 3 });
    assert.equal(ds.count, 10);
    assert.deepEqual([...ds.shape], SHAPE);
    await ds.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
