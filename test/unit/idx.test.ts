/**
 * IDX parsing (MNIST / Fashion-MNIST format): plain and gzipped files give the
 * same records; malformed files fail with a DatasetError naming the problem.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetError } from '../../src/shared/errors.js';
import { openIdx, parseIdxHeader, readIdx } from '../../src/shared/data/prepare/idx.js';
import { withTempDir } from '../helpers/cli.js';

/** Builds an IDX file: 00 00 type ndims, big-endian uint32 dims, data. */
function idx(type: number, dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, data]);
}

/** 3 images of 2×3: pixel value = 10·image + position, so every byte is distinct. */
const IMAGES = Uint8Array.from({ length: 3 * 6 }, (_, k) => 10 * Math.floor(k / 6) + (k % 6));

const withDir = (fn: (dir: string) => Promise<void>): Promise<void> => withTempDir(fn, 'distgan-idx-');

test('plain and gzipped IDX image files give the same header and records', async () => {
  await withDir(async (dir) => {
    const plain = join(dir, 'images-idx3-ubyte');
    // A misleading name: gzip is detected from the content, not ".gz".
    const gz = join(dir, 'images.bin');
    await writeFile(plain, idx(0x08, [3, 2, 3], IMAGES));
    await writeFile(gz, gzipSync(idx(0x08, [3, 2, 3], IMAGES)));
    for (const path of [plain, gz]) {
      const f = await openIdx(path);
      assert.deepEqual(f.header.dims, [3, 2, 3]);
      assert.equal(f.recordBytes, 6);
      assert.equal(f.count, 3);
      const recs: number[][] = [];
      for await (const r of f.records) recs.push([...r]);
      assert.deepEqual(recs, [
        [0, 1, 2, 3, 4, 5],
        [10, 11, 12, 13, 14, 15],
        [20, 21, 22, 23, 24, 25],
      ]);
    }
  });
});

test('a labels file reads as one byte per record', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'labels-idx1-ubyte.gz');
    await writeFile(path, gzipSync(idx(0x08, [4], Uint8Array.of(9, 0, 3, 7))));
    const { header, data } = await readIdx(path);
    assert.deepEqual(header.dims, [4]);
    assert.deepEqual([...data], [9, 0, 3, 7]);
  });
});

test('records that span stream chunks are reassembled', async () => {
  await withDir(async (dir) => {
    // 300 records of 10,007 bytes (a prime) cross the 1 MiB read chunks at odd places.
    const n = 300;
    const rb = 10_007;
    const data = new Uint8Array(n * rb);
    for (let k = 0; k < data.length; k++) data[k] = (k * 31 + 7) & 0xff;
    const path = join(dir, 'big.gz');
    await writeFile(path, gzipSync(idx(0x08, [n, rb], data)));
    const { data: got } = await readIdx(path);
    assert.equal(got.length, data.length);
    assert.ok(Buffer.from(got).equals(Buffer.from(data)));
  });
});

test('bad magic is a DatasetError naming the file', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'not-idx');
    await writeFile(path, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x20]));
    await assert.rejects(openIdx(path), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.match(e.message, /not an IDX file: bad magic 89 50 4e 47/);
      assert.ok(e.message.includes(path));
      return true;
    });
    // Same for a gzipped non-IDX payload.
    await writeFile(path, gzipSync(Buffer.from('hello world')));
    await assert.rejects(openIdx(path), /bad magic 68 65 6c 6c/);
  });
});

test('unsupported element types, truncation, trailing bytes and bad gzip are DatasetErrors', async () => {
  await withDir(async (dir) => {
    const p = join(dir, 'f');
    await writeFile(p, idx(0x0d, [1, 2], new Uint8Array(8)));
    await assert.rejects(openIdx(p), (e: unknown) => e instanceof DatasetError && /float32 \(0xd\) is not supported/.test(e.message));

    await writeFile(p, idx(0x08, [3, 2, 3], IMAGES.subarray(0, 14)));
    await assert.rejects(readIdx(p), (e: unknown) => e instanceof DatasetError && /truncated: header promises 3 records of 6 bytes, file holds 2/.test(e.message));

    await writeFile(p, idx(0x08, [3, 2, 3], Buffer.concat([IMAGES, Buffer.from([1, 2])])));
    await assert.rejects(readIdx(p), (e: unknown) => e instanceof DatasetError && /2 bytes after the 3 records/.test(e.message));

    const gz = gzipSync(idx(0x08, [3, 2, 3], IMAGES));
    await writeFile(p, gz.subarray(0, gz.length - 12));
    await assert.rejects(readIdx(p), (e: unknown) => e instanceof DatasetError);

    await writeFile(p, Buffer.from([0, 0, 8]));
    await assert.rejects(openIdx(p), (e: unknown) => e instanceof DatasetError && /ends inside the IDX header/.test(e.message));

    await assert.rejects(openIdx(join(dir, 'missing')), (e: unknown) => e instanceof DatasetError && /cannot read IDX file/.test(e.message));
  });
});

test('parseIdxHeader waits for a complete header', () => {
  const full = idx(0x08, [70000, 28, 28], new Uint8Array(0));
  assert.equal(parseIdxHeader(full.subarray(0, 3), 'x'), null);
  assert.equal(parseIdxHeader(full.subarray(0, 11), 'x'), null);
  assert.deepEqual(parseIdxHeader(full, 'x'), { type: 8, dims: [70000, 28, 28], headerBytes: 16 });
  assert.throws(() => parseIdxHeader(Buffer.from([0, 0, 8, 0]), 'x'), /dimension count 0/);
  assert.throws(() => parseIdxHeader(idx(0x08, [0, 28], new Uint8Array(0)), 'x'), /include a zero/);
});
