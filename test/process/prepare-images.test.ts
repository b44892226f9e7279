/**
 * `distgan prepare` on a real image folder — a couple of thousand PNG, JPEG
 * and WebP files of mixed sizes in nested folders, plus corrupt and
 * unsupported files — then `distgan launch` trains 2 workers on the result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCli, tempDir } from '../helpers/cli.js';
import { prepareDataset } from '../../src/shared/data/prepare/index.js';
import { openPackedDataset } from '../../src/shared/data/packed.js';

const IMAGES = 2000;
const R = 32;

/** Writes the folder; returns the relative paths of the files that must be skipped, by kind. */
async function makeFolder(root: string): Promise<{ corrupt: string[]; unsupported: string[]; good: number }> {
  const formats = ['png', 'jpg', 'webp'] as const;
  let pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < IMAGES; i++) {
    const dir = join(root, `class-${i % 5}`, i % 2 === 0 ? 'a' : 'b');
    if (i < 10) await mkdir(dir, { recursive: true });
    const w = 18 + (i % 17);
    const h = 20 + (i % 11);
    const px = Buffer.allocUnsafe(w * h * 3);
    for (let k = 0; k < px.length; k++) px[k] = (i * 5 + k * 3) & 0xff;
    const fmt = formats[i % 3]!;
    const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
    const encoded = fmt === 'png' ? img.png() : fmt === 'jpg' ? img.jpeg() : img.webp();
    pending.push(encoded.toFile(join(dir, `img-${String(i).padStart(5, '0')}.${fmt}`)));
    if (pending.length >= 32) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  // Sorted first ("0-" < "class-"): a solid red image with transparency, to check pixels end to end.
  await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } } })
    .png()
    .toFile(join(root, '0-red.png'));
  // A 1-channel PNG must come out as RGB.
  await sharp(Buffer.alloc(16 * 16, 200), { raw: { width: 16, height: 16, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(join(root, '1-grey.png'));

  const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).jpeg().toBuffer();
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#996633' } }).png().toBuffer();
  const corrupt = ['class-0/a/truncated.jpg', 'class-1/b/garbage.png', 'class-2/a/empty.jpg', 'class-3/b/cut.png', 'class-4/a/notreally.webp'];
  await writeFile(join(root, corrupt[0]!), jpeg.subarray(0, jpeg.length >> 1));
  await writeFile(join(root, corrupt[1]!), Buffer.from('this is not a PNG at all'));
  await writeFile(join(root, corrupt[2]!), Buffer.alloc(0));
  await writeFile(join(root, corrupt[3]!), png.subarray(0, png.length - 40));
  await writeFile(join(root, corrupt[4]!), Buffer.from('RIFF\x00\x00\x00\x00WEBPVP8 junk'));
  const unsupported = ['class-1/a/anim.gif', 'notes.txt'];
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).gif().toFile(join(root, unsupported[0]!));
  await writeFile(join(root, unsupported[1]!), 'labels live elsewhere\n');
  // Hidden entries are ignored, not reported.
  await writeFile(join(root, '.DS_Store'), 'x');
  return { corrupt, unsupported, good: IMAGES + 2 };
}

interface SkipEntry {
  file: string;
  kind: string;
  reason: string;
}

test('prepare an image folder through the CLI, then train 2 workers on it', async () => {
  const tmp = await tempDir('distgan-prep-img-');
  try {
    const input = join(tmp, 'images');
    const { corrupt, unsupported, good } = await makeFolder(input);
    const out = join(tmp, 'ds');

    const r = await runCli(['prepare', '--input', input, '--out', out, '--resolution', String(R)], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { count: number; skipped: number; fingerprint: string; shape: number[] };
    assert.equal(summary.count, good);
    assert.deepEqual(summary.shape, [R, R, 3]);
    assert.equal(summary.skipped, corrupt.length + unsupported.length);
    // Off a terminal, progress comes as whole lines on stderr.
    assert.match(r.stderr, /prepare: 100% \(\d+\/\d+/);
    assert.match(r.stderr, /skipped 7 files \(5 could not be decoded, 2 unsupported\)/);

    // The report names every skipped file with its kind and a reason.
    const report = JSON.parse(await readFile(join(out, 'prepare-report.json'), 'utf8')) as { skipped: SkipEntry[]; skippedCount: number; written: number };
    assert.equal(report.written, good);
    assert.equal(report.skippedCount, 7);
    const byFile = new Map(report.skipped.map((s) => [s.file, s]));
    for (const f of corrupt) {
      assert.equal(byFile.get(f)?.kind, 'corrupt', `${f} should be reported as corrupt: ${JSON.stringify(report.skipped)}`);
      assert.match(byFile.get(f)!.reason, /cannot decode: \S/);
    }
    for (const f of unsupported) {
      assert.equal(byFile.get(f)?.kind, 'unsupported', `${f} should be reported as unsupported`);
      assert.match(byFile.get(f)!.reason, /unsupported file type/);
    }
    assert.ok(!byFile.has('.DS_Store'));

    // The data itself: index consistent with the files (full verify), pixels as expected.
    const ds = await openPackedDataset(out, { verify: true });
    try {
      assert.equal(ds.count, good);
      assert.equal(ds.fingerprint, summary.fingerprint);
      const [red, grey] = [await ds.readBytes([0]), await ds.readBytes([1])];
      for (let p = 0; p < R * R; p++) {
        assert.deepEqual([red[3 * p], red[3 * p + 1], red[3 * p + 2]], [255, 0, 0], `red pixel ${p}`);
        assert.deepEqual([grey[3 * p], grey[3 * p + 1], grey[3 * p + 2]], [200, 200, 200], `grey pixel ${p}`);
      }
    } finally {
      await ds.close();
    }

    // The fingerprint depends on the content only: a second prepare with other shards agrees.
    const again = await prepareDataset({ input, out: join(tmp, 'ds-again'), resolution: R, channels: 3, shardSize: 500 });
    assert.equal(again.shards.length, Math.ceil(good / 500));
    assert.equal(again.fingerprint, summary.fingerprint);

    // An existing dataset is not clobbered.
    const clash = await runCli(['prepare', '--input', input, '--out', out, '--resolution', String(R)]);
    assert.equal(clash.code, 2);
    assert.match(clash.stderr, /already holds a prepared dataset; pass --force/);

    const run = await runCli(
      ['launch', '--dataset', out, '--workers', '2', '--steps', '3', '--width', '0.25', '--metrics-port', '0', '--out', join(tmp, 'run')],
      { timeoutMs: 180_000 },
    );
    assert.equal(run.code, 0, run.stderr.slice(-3000));
    const runSummary = JSON.parse(await readFile(join(tmp, 'run', 'summary.json'), 'utf8')) as { steps: number; worldSize: number };
    assert.equal(runSummary.steps, 3);
    assert.equal(runSummary.worldSize, 2);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('prepare refuses a resolution the DCGAN cannot train at, before reading or creating anything', async () => {
  const dir = await tempDir();
  try {
    const input = join(dir, 'in');
    await mkdir(input);
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toFile(join(input, 'a.png'));
    const out = join(dir, 'out');
    const r = await runCli(['prepare', '--input', input, '--out', out, '--resolution', '48']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--resolution 48: distgan trains images with its DCGAN at 28, 32, 64, 128 px only.*\[DISTGAN_E_CONFIG\]/);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(out), false, 'no dataset folder was created');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
