/**
 * Worker-side memory stays bounded on a dataset several times larger than
 * the reader's cache: a child process reads all of a 201 MB packed dataset
 * (64×64 RGB) with a 32 MiB cache, the way a worker does (each step's slice
 * prefetched during the previous step), and reports its RSS. The growth must
 * stay far below the dataset's size.
 *
 * The child is this same file, started with DISTGAN_PACKED_MEMORY_CHILD set,
 * so it runs under whatever loader runs the test (tsx or the compiled suite).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/cli.js';
import { PackedWriter } from '../../src/shared/data/prepare/writer.js';
import { openPackedDataset } from '../../src/shared/data/packed.js';
import { permutation } from '../../src/shared/rng.js';

const CHILD_ENV = 'DISTGAN_PACKED_MEMORY_CHILD';
const CACHE_BYTES = 32 * 1024 * 1024;
const COUNT = 16_384;
const SHAPE: [number, number, number] = [64, 64, 3];
const BATCH = 64;
/**
 * RSS growth allowed beyond the cache (bytes): the batch buffers, and float
 * batches already dropped but not yet collected: V8 collects ArrayBuffer
 * garbage once ~64 MiB of external memory has accumulated. Measured here:
 * 89 MiB of growth with the 32 MiB bound, 217 MiB without a bound.
 */
const SLACK = 96 * 1024 * 1024;

interface ChildReport {
  baselineRss: number;
  peakRss: number;
  rows: number;
  rowsRead: number;
  cacheBytesUsed: number;
}

async function child(dir: string): Promise<void> {
  const ds = await openPackedDataset(dir, { cacheBytes: CACHE_BYTES, flip: true, seed: 1 });
  const order = permutation(ds.count, 1, 0);
  const slice = (s: number): Int32Array => order.subarray(s * BATCH, (s + 1) * BATCH);
  const steps = ds.count / BATCH;
  const warm = 8;
  let baselineRss = 0;
  let peakRss = 0;
  let rows = 0;
  ds.prefetch(slice(0), { step: 0 });
  for (let s = 0; s < steps; s++) {
    const x = await ds.read(slice(s), { step: s });
    if (s + 1 < steps) ds.prefetch(slice(s + 1), { step: s + 1 });
    rows += x.length / (64 * 64 * 3);
    // Stand-in for the step's compute: touch the data so nothing is optimised away.
    let acc = 0;
    for (let k = 0; k < x.length; k += 997) acc += x[k]!;
    if (!Number.isFinite(acc)) throw new Error('non-finite sample');
    const rss = process.memoryUsage().rss;
    if (s === warm) baselineRss = rss;
    if (s >= warm) peakRss = Math.max(peakRss, rss);
  }
  const st = ds.stats();
  await ds.close();
  const report: ChildReport = { baselineRss, peakRss, rows, rowsRead: st.rowsRead, cacheBytesUsed: st.cacheBytesUsed };
  process.stdout.write(JSON.stringify(report) + '\n');
}

if (process.env[CHILD_ENV] !== undefined) {
  await child(process.env[CHILD_ENV]!);
} else {
  test('reading a dataset 6× the cache bound keeps RSS growth bounded', async () => {
    const tmp = await tempDir('distgan-packed-mem-');
    try {
      const dir = join(tmp, 'ds');
      await mkdir(dir);
      const w = await PackedWriter.create(dir, { shape: SHAPE });
      const chunk = Buffer.allocUnsafe(256 * w.sampleBytes);
      for (let i = 0; i < COUNT; i += 256) {
        randomFillSync(chunk);
        for (let k = 0; k < 256; k++) await w.append(chunk.subarray(k * w.sampleBytes, (k + 1) * w.sampleBytes));
      }
      await w.finish();
      const datasetBytes = COUNT * w.sampleBytes;
      assert.ok(datasetBytes >= 6 * (CACHE_BYTES - 2 ** 20), `dataset ${datasetBytes} B`);

      // The test runner's own flags (--test…) must not reach the child; loader flags (tsx) must.
      const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(process.execPath, [...execArgv, fileURLToPath(import.meta.url)], {
          env: { ...process.env, [CHILD_ENV]: dir },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let so = '';
        let se = '';
        p.stdout.on('data', (d: Buffer) => (so += d.toString()));
        p.stderr.on('data', (d: Buffer) => (se += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
        p.on('exit', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(so);
          else reject(new Error(`child exited ${code}: ${se.slice(-2000)}`));
        });
      });
      const r = JSON.parse(out.trim().split('\n').pop()!) as ChildReport;
      assert.equal(r.rows, COUNT);
      // A permutation touches every row once: all of them came from disk.
      assert.equal(r.rowsRead, COUNT);
      assert.ok(r.cacheBytesUsed <= CACHE_BYTES);
      const growth = r.peakRss - r.baselineRss;
      const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
      assert.ok(
        growth < CACHE_BYTES + SLACK,
        `RSS grew by ${mb(growth)} (baseline ${mb(r.baselineRss)}, peak ${mb(r.peakRss)}) reading ${mb(datasetBytes)}; bound ${mb(CACHE_BYTES + SLACK)}`,
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
}
