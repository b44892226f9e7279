/**
 * How prepare turns one image into one sample: centre crop (not squash),
 * resize, grey/RGB conversion, alpha flattened onto black; raw IDX records
 * converted with the same rules; the image-folder walk order and skips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { DatasetError } from '../../src/shared/errors.js';
import { convertRaw, decodeImage, listImageFiles } from '../../src/shared/data/prepare/images.js';

/** A 30×10 RGB PNG: columns 0–9 red, 10–19 green, 20–29 blue. */
async function stripes(): Promise<Buffer> {
  const px = Buffer.alloc(30 * 10 * 3);
  for (let y = 0; y < 10; y++) {
    for (let x = 0; x < 30; x++) px[(y * 30 + x) * 3 + Math.floor(x / 10)] = 255;
  }
  return sharp(px, { raw: { width: 30, height: 10, channels: 3 } }).png().toBuffer();
}

test('decodeImage crops the centred square, so a wide image keeps only its middle', async () => {
  const exact = await decodeImage(await stripes(), 10, 3);
  assert.equal(exact.length, 10 * 10 * 3);
  for (let p = 0; p < 100; p++) assert.deepEqual([...exact.subarray(3 * p, 3 * p + 3)], [0, 255, 0], `pixel ${p}`);
  // Downscaled, the Lanczos kernel lets a little of the neighbouring stripes in at the edges.
  const small = await decodeImage(await stripes(), 4, 3);
  assert.equal(small.length, 4 * 4 * 3);
  for (let p = 0; p < 16; p++) {
    const [r, g, b] = small.subarray(3 * p, 3 * p + 3);
    assert.ok(g! >= 235 && r! <= 20 && b! <= 20, `pixel ${p} is ${r},${g},${b}`);
  }
});

test('decodeImage converts to grey, and flattens transparency onto black', async () => {
  const grey = await decodeImage(await stripes(), 10, 1);
  assert.equal(grey.length, 100);
  // Pure green in grey (libvips b-w, luminance in sRGB): one bright value everywhere.
  assert.ok(grey.every((v) => v === grey[0]) && grey[0]! > 150 && grey[0]! < 240, `grey ${grey[0]}`);
  const halfTransparentWhite = await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 0.5 } } })
    .png()
    .toBuffer();
  const flat = await decodeImage(halfTransparentWhite, 2, 3);
  for (const v of flat) assert.ok(Math.abs(v - 128) <= 1, `half-transparent white on black ≈ 128, got ${v}`);
});

test('decodeImage rejects a damaged file with the decoder\'s reason', async () => {
  const png = await stripes();
  await assert.rejects(decodeImage(png.subarray(0, png.length - 20), 4, 3), (e: unknown) => e instanceof DatasetError && /^cannot decode: /.test(e.message));
  await assert.rejects(decodeImage(Buffer.from('not an image'), 4, 3), (e: unknown) => e instanceof DatasetError && /unsupported image format/.test(e.message));
});

test('convertRaw copies at native size, widens grey to RGB, and resizes', async () => {
  const rec = Uint8Array.from({ length: 28 * 28 }, (_, k) => k % 256);
  const same = await convertRaw(rec, { height: 28, width: 28, channels: 1 }, 28, 1);
  assert.deepEqual([...same], [...rec]);
  const rgb = await convertRaw(rec, { height: 28, width: 28, channels: 1 }, 28, 3);
  assert.equal(rgb.length, 28 * 28 * 3);
  for (let p = 0; p < 28 * 28; p++) assert.deepEqual([rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]], [rec[p], rec[p], rec[p]]);
  const flat = new Uint8Array(28 * 28).fill(77);
  const up = await convertRaw(flat, { height: 28, width: 28, channels: 1 }, 32, 1);
  assert.equal(up.length, 32 * 32);
  assert.ok(up.every((v) => v === 77), 'a flat image stays flat when resized');
});

test('listImageFiles walks in byte order, skips hidden entries, follows links once, reports the rest', async () => {
  const root = await mkdtemp(join(tmpdir(), 'distgan-walk-'));
  try {
    await mkdir(join(root, 'b'));
    await mkdir(join(root, 'a', '.git'), { recursive: true });
    for (const f of ['b/2.PNG', 'b/10.jpg', 'a/Z.webp', 'a/a.jpeg', 'a/.git/x.png', 'a/readme.md', 'B.png', '.hidden.png']) {
      await writeFile(join(root, f), 'x');
    }
    await symlink(join(root, 'b'), join(root, 'c-link'));
    await symlink(root, join(root, 'b', 'loop'));
    await symlink(join(root, 'nowhere'), join(root, 'dangling.png'));
    const { files, unsupported } = await listImageFiles(root);
    assert.deepEqual(
      files.map((f) => relative(root, f)),
      // Byte order: 'B' < 'a' < 'b'; '10' < '2'. c-link and b/loop lead to directories already visited.
      ['B.png', 'a/Z.webp', 'a/a.jpeg', 'b/10.jpg', 'b/2.PNG'],
    );
    assert.deepEqual(
      unsupported.map((u) => [u.file, u.kind]),
      [
        ['a/readme.md', 'unsupported'],
        ['dangling.png', 'unsupported'],
      ],
    );
    assert.match(unsupported[1]!.reason, /cannot stat \(ENOENT\)/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
