/**
 * Fashion-MNIST from the Debian package `dataset-fashion-mnist` (IDX, gzip):
 * `distgan prepare` with its labels, checked against the published figures
 * (60,000 images, 6,000 per class, mean pixel 72.94/255), then 2 workers
 * train a few steps on it through `distgan launch`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, tempDir } from '../helpers/cli.js';
import { openPackedDataset } from '../../src/shared/data/packed.js';

const DIR = '/usr/share/datasets/fashion-mnist';
const IMAGES = join(DIR, 'train-images-idx3-ubyte.gz');
const LABELS = join(DIR, 'train-labels-idx1-ubyte.gz');

test('Fashion-MNIST (IDX) prepares with labels and trains on 2 workers', async () => {
  for (const f of [IMAGES, LABELS]) {
    assert.ok(
      existsSync(f),
      `${f} is missing: install the Debian package dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist; npm test does this when run as root)`,
    );
  }
  const tmp = await tempDir('distgan-fmnist-');
  try {
    const out = join(tmp, 'fashion-mnist');
    const r = await runCli(['prepare', '--input', IMAGES, '--labels', LABELS, '--out', out, '--resolution', '28'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { count: number; shape: number[]; skipped: number };
    assert.deepEqual([summary.count, summary.shape, summary.skipped], [60_000, [28, 28, 1], 0]);

    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { labels?: { count: number }; source?: { kind: string } };
    assert.equal(index.labels?.count, 60_000);
    assert.equal(index.source?.kind, 'idx');
    const labels = await readFile(join(out, 'labels.bin'));
    // The first training labels of Fashion-MNIST: ankle boot, T-shirt, T-shirt, dress, …
    assert.deepEqual([...labels.subarray(0, 10)], [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    const perClass = new Array<number>(10).fill(0);
    for (const l of labels) perClass[l]!++;
    assert.deepEqual(perClass, new Array<number>(10).fill(6000));

    const ds = await openPackedDataset(out, { verify: true });
    try {
      let sum = 0;
      for (let start = 0; start < ds.count; start += 10_000) {
        const bytes = await ds.readBytes(Int32Array.from({ length: 10_000 }, (_, k) => start + k));
        for (const b of bytes) sum += b;
      }
      const mean = sum / (ds.count * 784);
      assert.ok(Math.abs(mean - 72.94) < 0.01, `mean pixel ${mean}, Fashion-MNIST's is 72.94`);
    } finally {
      await ds.close();
    }

    const run = await runCli(
      ['launch', '--dataset', out, '--workers', '2', '--steps', '3', '--width', '0.25', '--metrics-port', '0', '--out', join(tmp, 'run')],
      { timeoutMs: 180_000 },
    );
    assert.equal(run.code, 0, run.stderr.slice(-3000));
    const runSummary = JSON.parse(await readFile(join(tmp, 'run', 'summary.json'), 'utf8')) as { steps: number; worldSize: number };
    assert.equal(runSummary.steps, 3);
    assert.equal(runSummary.worldSize, 2);
    const config = JSON.parse(await readFile(join(tmp, 'run', 'config.json'), 'utf8')) as { dataset: string };
    assert.equal(config.dataset, out);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
