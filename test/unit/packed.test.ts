/**
 * The packed-dataset reader: exact values, reading only the requested rows
 * (and, once per chunk, the chunk that holds them, to check its CRC-32), the
 * bounded row cache, deterministic flips, prefetch, damage inside a shard
 * caught by the read that touches it, older datasets without chunk checksums,
 * and index validation (each problem a DatasetError that names it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError } from '../../src/shared/errors.js';
import { PackedWriter } from '../../src/shared/data/prepare/writer.js';
import { CHUNK_TARGET_BYTES, crc32, crc32Js } from '../../src/shared/data/prepare/chunks.js';
import { openPackedDataset } from '../../src/shared/data/packed.js';

const SHAPE: [number, number, number] = [4, 5, 3];
const RB = 4 * 5 * 3;

/** Byte k of sample i: distinct enough that any mix-up of rows or pixels shows. */
function byteOf(i: number, k: number): number {
  return (i * 7 + k * 13 + ((i * k) >> 3)) & 0xff;
}

function sample(i: number): Uint8Array {
  return Uint8Array.from({ length: RB }, (_, k) => byteOf(i, k));
}

async function makeDataset(dir: string, n: number, shardSize: number, chunkSamples?: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const w = await PackedWriter.create(dir, chunkSamples === undefined ? { shape: SHAPE, shardSize } : { shape: SHAPE, shardSize, chunkSamples });
  for (let i = 0; i < n; i++) await w.append(sample(i));
  await w.finish({ source: { kind: 'generated', input: 'test' } });
}

async function withDataset(
  n: number,
  shardSize: number,
  fn: (dir: string, root: string) => Promise<void>,
  chunkSamples?: number,
): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'distgan-packed-'));
  try {
    const dir = join(root, 'ds');
    await makeDataset(dir, n, shardSize, chunkSamples);
    await fn(dir, root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function expectedFloats(indices: number[], flipped: boolean[] = []): Float32Array {
  const out = new Float32Array(indices.length * RB);
  const [h, w, c] = SHAPE;
  indices.forEach((i, j) => {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sx = flipped[j] === true ? w - 1 - x : x;
        for (let ch = 0; ch < c; ch++) out[j * RB + (y * w + x) * c + ch] = byteOf(i, (y * w + sx) * c + ch) / 127.5 - 1;
      }
    }
  });
  return out;
}

/** Bytes this process has read through read-type syscalls (Linux /proc). */
async function rchar(): Promise<number> {
  return Number(/rchar:\s*(\d+)/.exec(await readFile('/proc/self/io', 'utf8'))![1]);
}

test('read returns the requested rows as floats in [-1, 1], across shards, unsorted and repeated', async () => {
  await withDataset(100, 7, async (dir) => {
    const ds = await openPackedDataset(dir);
    try {
      assert.equal(ds.count, 100);
      assert.deepEqual([...ds.shape], [4, 5, 3]);
      assert.equal(ds.name, 'ds');
      assert.match(ds.fingerprint, /^100:sha256:[0-9a-f]{64}$/);
      const idx = [99, 0, 6, 7, 8, 6, 50, 13, 14];
      assert.deepEqual(await ds.read(idx), expectedFloats(idx));
      const bytes = await ds.readBytes([3, 98]);
      assert.deepEqual(bytes, Uint8Array.from([...sample(3), ...sample(98)]));
      const all = await ds.read([0, 1, 2]);
      assert.ok(all.every((v) => v >= -1 && v <= 1));
      await assert.rejects(ds.read([100]), (e: unknown) => e instanceof DatasetError && /index 100 is outside \[0, 100\)/.test(e.message));
      await assert.rejects(ds.read([1.5]), DatasetError);
    } finally {
      await ds.close();
    }
    await assert.rejects(ds.read([0]), /closed/);
  });
});

test('only the requested rows are read from disk, plus each chunk once for its check', async () => {
  // 20,000 rows × 60 B = 1.2 MB on disk in shards of 5,000; chunks of 1,092 rows (64 KiB).
  await withDataset(20_000, 5000, async (dir) => {
    const ds = await openPackedDataset(dir, { cacheBytes: 0 });
    try {
      const k = Math.floor(CHUNK_TARGET_BYTES / RB);
      assert.equal(ds.index.chunkSamples, k);
      assert.equal(ds.checksChunks, true);
      await ds.read([1]); // opens the first shard's handle; reads and checks chunk 0 (rows 0..1091)
      assert.deepEqual(ds.stats(), { ...ds.stats(), rowsRead: 1, bytesRead: k * RB, checkBytesRead: (k - 1) * RB, chunksChecked: 1, readCalls: 1 });
      // Row 4 is in the checked chunk 0: only its bytes. Rows 4000 and 4999 are
      // in the unchecked chunks 3 (3276..4367) and 4 (4368..4999, the shard's
      // short last chunk): each is read whole, once.
      let before = await rchar();
      await ds.read([4, 4000, 4999]);
      const chunkBytes = (1 + k + (5000 - 4 * k)) * RB;
      // Reading /proc/self/io itself adds well under 1 KB.
      let delta = (await rchar()) - before;
      assert.ok(delta >= chunkBytes && delta < chunkBytes + 4096, `read ${delta} bytes, expected ${chunkBytes}`);
      assert.equal(ds.stats().chunksChecked, 3);
      assert.equal(ds.stats().rowsRead, 4);
      // 4000 and 4999 are not consecutive: separate reads; 4 on its own.
      assert.equal(ds.stats().readCalls, 4);
      // Their chunks are checked now: the same rows again cost exactly their bytes.
      const bytesBefore = ds.stats().bytesRead;
      before = await rchar();
      await ds.read([4, 4000, 4999]);
      delta = (await rchar()) - before;
      assert.ok(delta < 3 * RB + 4096, `read ${delta} bytes for 3 rows of ${RB}`);
      assert.equal(ds.stats().bytesRead - bytesBefore, 3 * RB);
      assert.equal(ds.stats().chunksChecked, 3);
      // Consecutive rows inside one shard coalesce into a single read.
      await ds.read([10, 11, 12, 13]);
      assert.equal(ds.stats().readCalls, 8);
    } finally {
      await ds.close();
    }
  });
});

test('bytes zeroed inside a shard after prepare (same size) fail the read that touches them, naming shard and chunk', async () => {
  // 100 samples, shards of 40, chunks of 8 samples: shard-00001.bin holds
  // samples 40..79; its chunk 2 is samples 56..63. Samples 58..60 are zeroed.
  await withDataset(
    100,
    40,
    async (dir) => {
      const fh = await open(join(dir, 'shard-00001.bin'), 'r+');
      await fh.write(Buffer.alloc(3 * RB), 0, 3 * RB, (58 - 40) * RB);
      await fh.close();
      // Sizes are right, so the open (which reads no data) succeeds.
      const ds = await openPackedDataset(dir, { cacheBytes: 0 });
      try {
        const corrupt = (e: unknown): boolean => {
          assert.ok(e instanceof DatasetError, `expected DatasetError, got ${String(e)}`);
          assert.equal(e.code, 'DISTGAN_E_DATASET');
          assert.match(e.message, /shard shard-00001\.bin is corrupt in chunk 2 \(samples 56\.\.63, bytes 960\.\.1439 of the file\): CRC-32 [0-9a-f]{8}, index\.json says [0-9a-f]{8}/);
          return true;
        };
        // Sample 57 itself is intact, but it is checked with its chunk.
        await assert.rejects(ds.read([57]), corrupt);
        // A failed chunk is not remembered as checked: it fails every time.
        await assert.rejects(ds.read([59]), corrupt);
        ds.prefetch([60], { step: 1 });
        await assert.rejects(ds.read([60], { step: 1 }), corrupt);
        // The neighbouring chunks of the same shard, and the other shards, read fine.
        const fine = [55, 48, 64, 71, 0, 39, 80, 99];
        assert.deepEqual(await ds.read(fine), expectedFloats(fine));
        assert.equal(ds.stats().chunksChecked, 6);
      } finally {
        await ds.close();
      }
    },
    8,
  );
});

test('a dataset prepared before chunk checksums keeps its fingerprint and reads, size-checked only, and says so', async () => {
  await withDataset(30, 10, async (dir, root) => {
    const current = await openPackedDataset(dir);
    const fingerprint = current.fingerprint;
    await current.close();
    const old = join(root, 'old');
    await cp(dir, old, { recursive: true });
    // index.json as prepare wrote it before chunk checksums existed.
    const o = JSON.parse(await readFile(join(old, 'index.json'), 'utf8')) as Record<string, unknown>;
    delete o['chunkSamples'];
    for (const shard of o['shards'] as Array<Record<string, unknown>>) delete shard['chunkCrc32'];
    await writeFile(join(old, 'index.json'), JSON.stringify(o));
    const lines: string[] = [];
    const ds = await openPackedDataset(old, { log: (l) => lines.push(l) });
    try {
      assert.equal(ds.fingerprint, fingerprint);
      assert.equal(ds.checksChunks, false);
      assert.equal(lines.length, 1);
      assert.match(lines[0]!, /has no chunk checksums .*only file sizes are checked.*re-run `distgan prepare`/);
      const idx = [0, 9, 10, 29];
      assert.deepEqual(await ds.read(idx), expectedFloats(idx));
      assert.equal(ds.stats().chunksChecked, 0);
    } finally {
      await ds.close();
    }
  });
});

test('crc32 is the IEEE CRC-32 of zlib, in both implementations, and continues across pieces', () => {
  const check = Buffer.from('123456789');
  // The catalogued check value of CRC-32/ISO-HDLC (zlib, gzip, PNG).
  assert.equal(crc32(check), 0xcbf43926);
  assert.equal(crc32Js(check), 0xcbf43926);
  const data = Uint8Array.from({ length: 1000 }, (_, k) => byteOf(k, k));
  assert.equal(crc32Js(data), crc32(data));
  assert.equal(crc32(data.subarray(300), crc32(data.subarray(0, 300))), crc32(data));
  assert.equal(crc32Js(data.subarray(300), crc32Js(data.subarray(0, 300))), crc32(data));
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('the row cache serves repeats and stays within cacheBytes', async () => {
  await withDataset(200, 64, async (dir) => {
    const ds = await openPackedDataset(dir, { cacheBytes: 10 * RB });
    try {
      const first = Array.from({ length: 30 }, (_, k) => k * 5);
      await ds.read(first);
      assert.equal(ds.stats().cacheBytesUsed, 10 * RB);
      const readBefore = ds.stats().rowsRead;
      // The 10 most recent rows are cached.
      const recent = first.slice(20);
      assert.deepEqual(await ds.read(recent), expectedFloats(recent));
      assert.equal(ds.stats().rowsRead, readBefore);
      assert.equal(ds.stats().cacheHits, 10);
      // The oldest were evicted.
      await ds.read([first[0]!]);
      assert.equal(ds.stats().rowsRead, readBefore + 1);
      assert.ok(ds.stats().cacheBytesUsed <= 10 * RB);
    } finally {
      await ds.close();
    }
  });
});

test('flips are a deterministic function of (seed, index, step) and mirror each row exactly', async () => {
  await withDataset(64, 64, async (dir) => {
    const a = await openPackedDataset(dir, { flip: true, seed: 7 });
    const b = await openPackedDataset(dir, { flip: true, seed: 7, cacheBytes: 0 });
    const c = await openPackedDataset(dir, { flip: true, seed: 8 });
    try {
      const idx = Array.from({ length: 64 }, (_, i) => i);
      let flips = 0;
      const perStep: string[] = [];
      for (let step = 0; step < 4; step++) {
        const got = await a.read(idx, { step });
        const plain = expectedFloats(idx);
        const mirrored = expectedFloats(idx, idx.map(() => true));
        const pattern = idx.map((_, j) => {
          const row = got.subarray(j * RB, (j + 1) * RB);
          const isPlain = row.every((v, k) => v === plain[j * RB + k]);
          const isMirror = row.every((v, k) => v === mirrored[j * RB + k]);
          assert.ok(isPlain !== isMirror, `row ${j} at step ${step} is neither the sample nor its mirror`);
          if (isMirror) flips++;
          return isMirror ? '1' : '0';
        });
        perStep.push(pattern.join(''));
        // Same seed, other process state (no cache): same decisions.
        assert.deepEqual(await b.read(idx, { step }), got);
        // Reading a subset in another order gives the same rows.
        assert.deepEqual(await b.read([5, 3], { step }), Float32Array.from([...got.subarray(5 * RB, 6 * RB), ...got.subarray(3 * RB, 4 * RB)]));
      }
      assert.ok(flips > 64 && flips < 192, `${flips} of 256 rows flipped`);
      assert.ok(new Set(perStep).size > 1, 'flip decisions must change with the step');
      assert.notDeepEqual(await c.read(idx, { step: 0 }), await a.read(idx, { step: 0 }));
      // Without flip the data is untouched.
      const plainDs = await openPackedDataset(dir);
      assert.deepEqual(await plainDs.read(idx, { step: 3 }), expectedFloats(idx));
      await plainDs.close();
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });
});

test('prefetch hands its result to the matching read; errors surface there', async () => {
  await withDataset(50, 50, async (dir) => {
    const ds = await openPackedDataset(dir, { cacheBytes: 0 });
    try {
      ds.prefetch([4, 9, 2], { step: 3 });
      const got = await ds.read([4, 9, 2], { step: 3 });
      assert.equal(ds.stats().prefetchHits, 1);
      assert.equal(ds.stats().rowsRead, 3);
      assert.deepEqual(got, expectedFloats([4, 9, 2]));
      // Different step or indices: not the prefetched result.
      ds.prefetch([1, 2], { step: 4 });
      await ds.read([1, 2], { step: 5 });
      await ds.read([2, 1], { step: 4 });
      assert.equal(ds.stats().prefetchHits, 1);
      await ds.read([1, 2], { step: 4 });
      assert.equal(ds.stats().prefetchHits, 2);
      ds.prefetch([60]);
      await assert.rejects(ds.read([60]), (e: unknown) => e instanceof DatasetError && /index 60/.test(e.message));
    } finally {
      await ds.close();
    }
  });
});

test('index.json problems are DatasetErrors that name them', async () => {
  await withDataset(30, 10, async (dir, root) => {
    const expectErr = async (path: string, re: RegExp, opts = {}): Promise<void> => {
      await assert.rejects(openPackedDataset(path, opts), (e: unknown) => {
        assert.ok(e instanceof DatasetError, `expected DatasetError, got ${String(e)}`);
        assert.match(e.message, re);
        return true;
      });
    };
    const copy = async (name: string): Promise<string> => {
      const to = join(root, name);
      await cp(dir, to, { recursive: true });
      return to;
    };
    const editIndex = async (d: string, f: (o: Record<string, unknown>) => void): Promise<void> => {
      const o = JSON.parse(await readFile(join(d, 'index.json'), 'utf8')) as Record<string, unknown>;
      f(o);
      await writeFile(join(d, 'index.json'), JSON.stringify(o));
    };

    await expectErr(join(root, 'nope'), /does not exist/);
    const empty = join(root, 'empty');
    await mkdir(empty);
    await expectErr(empty, /not a prepared dataset: index\.json is missing/);
    await mkdir(join(root, `.empty.partial-somehost-123-abcd`));
    await expectErr(empty, /interrupted/);

    const v2 = await copy('v2');
    await editIndex(v2, (o) => (o.version = 2));
    await expectErr(v2, /version 2 is not supported: this distgan reads version 1/);

    const garbage = await copy('garbage');
    await writeFile(join(garbage, 'index.json'), '{"format": "distgan-packed", ');
    await expectErr(garbage, /not valid JSON/);

    const short = await copy('short');
    await truncate(join(short, 'shard-00001.bin'), 10 * RB - 1);
    await expectErr(short, /shard shard-00001\.bin is 599 bytes, index\.json says 10 samples × 60 bytes = 600/);

    const missing = await copy('missing');
    await rm(join(missing, 'shard-00002.bin'));
    await expectErr(missing, /shard shard-00002\.bin listed in index\.json is missing/);

    const counts = await copy('counts');
    await editIndex(counts, (o) => (o.count = 31));
    await expectErr(counts, /shard counts add up to 30, but count is 31/);

    const escape = await copy('escape');
    await editIndex(escape, (o) => ((o.shards as Array<{ file: string }>)[0]!.file = '../ds/shard-00000.bin'));
    await expectErr(escape, /must be a file name inside the dataset/);

    const crcs = await copy('crcs');
    await editIndex(crcs, (o) => ((o.shards as Array<{ chunkCrc32: string }>)[1]!.chunkCrc32 = 'AAAA'));
    await expectErr(crcs, /shards\[1\]\.chunkCrc32 \(shard-00001\.bin\) must be base64 of 1 CRC-32s \(10 samples in chunks of 1092\)/);

    const stray = await copy('stray');
    await editIndex(stray, (o) => delete o.chunkSamples);
    await expectErr(stray, /shards\[0\] \(shard-00000\.bin\) has chunkCrc32 but the index has no chunkSamples/);

    const zeroChunk = await copy('zero-chunk');
    await editIndex(zeroChunk, (o) => (o.chunkSamples = 0));
    await expectErr(zeroChunk, /chunkSamples must be a positive integer, got 0/);

    const edited = await copy('edited');
    await editIndex(edited, (o) => (o.contentSha256 = 'f'.repeat(64)));
    await expectErr(edited, /fingerprint .* does not match its contents/);

    // A byte changed after prepare: only a full verify can see it.
    const flipped = await copy('flipped');
    const fh = await open(join(flipped, 'shard-00001.bin'), 'r+');
    await fh.write(Buffer.from([byteOf(12, 5) ^ 1]), 0, 1, 2 * RB + 5);
    await fh.close();
    await expectErr(flipped, /shard shard-00001\.bin has SHA-256 [0-9a-f]{64}, index\.json says [0-9a-f]{64}: the copy is corrupt/, { verify: true });
    const ok = await openPackedDataset(dir, { verify: true });
    await ok.close();
  });
});
