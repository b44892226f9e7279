/**
 * An interrupted `distgan prepare` never leaves a dataset that looks
 * complete: killed with SIGKILL mid-way, the target does not exist and the
 * staging directory has no index.json (and is cleaned up by the next
 * prepare); stopped with SIGINT, it removes its staging directory and exits
 * 130.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { randomFillSync } from 'node:crypto';
import { runCli, startCli, tempDir } from '../helpers/cli.js';
import { DatasetError } from '../../src/shared/errors.js';
import { openDataset } from '../../src/shared/data/open.js';

/** A gzipped IDX file of n random 28×28 images. */
async function writeIdx(path: string, n: number): Promise<void> {
  const head = Buffer.alloc(16);
  head[2] = 0x08;
  head[3] = 3;
  head.writeUInt32BE(n, 4);
  head.writeUInt32BE(28, 8);
  head.writeUInt32BE(28, 12);
  await writeFile(path, gzipSync(Buffer.concat([head, randomFillSync(Buffer.alloc(n * 784))])));
}

// Upscaling to 64×64 RGB makes each image go through libvips: slow enough to be caught mid-way.
const SLOW = ['--resolution', '64', '--channels', '3', '--shard-size', '200'];

test('SIGKILL mid-prepare leaves no index.json at the target; the next prepare cleans up', async () => {
  const tmp = await tempDir('distgan-prep-kill-');
  try {
    const input = join(tmp, 'big-idx3-ubyte.gz');
    await writeIdx(input, 20_000);
    const out = join(tmp, 'ds');
    const cli = startCli(['prepare', '--input', input, '--out', out, ...SLOW], { timeoutMs: 120_000 });
    await cli.waitFor(/prepare: [1-9]\d*% \(/, 60_000);
    const partialName = `.ds.partial-${hostname()}-${cli.proc.pid}-`;
    cli.proc.kill('SIGKILL');
    const r = await cli.done;
    assert.equal(r.signal, 'SIGKILL');

    assert.ok(!existsSync(out), 'the target must not exist after a killed prepare');
    const partials = (await readdir(tmp)).filter((n) => n.startsWith(partialName));
    assert.equal(partials.length, 1, `expected the killed prepare's staging directory: ${await readdir(tmp)}`);
    const staged = await readdir(join(tmp, partials[0]!));
    assert.ok(staged.some((f) => f.startsWith('shard-')), `it was killed mid-way, with shards written: ${staged}`);
    assert.ok(!staged.includes('index.json'), 'index.json is written last, so a killed prepare has none');
    // Neither the target nor the staging directory opens as a dataset.
    await assert.rejects(openDataset(out), DatasetError);
    await assert.rejects(openDataset(join(tmp, partials[0]!)), /index\.json is missing/);

    // The next prepare into the same target succeeds and removes the dead process's staging directory.
    const small = join(tmp, 'small-idx3-ubyte.gz');
    await writeIdx(small, 500);
    const again = await runCli(['prepare', '--input', small, '--out', out, '--resolution', '28']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((await readdir(tmp)).filter((n) => n.startsWith('.ds.partial-')), []);
    const ds = await openDataset(out);
    assert.equal(ds.count, 500);
    await ds.close();
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('SIGINT mid-prepare removes the staging directory and exits 130', async () => {
  const tmp = await tempDir('distgan-prep-int-');
  try {
    const input = join(tmp, 'big-idx3-ubyte.gz');
    await writeIdx(input, 20_000);
    const out = join(tmp, 'ds');
    const cli = startCli(['prepare', '--input', input, '--out', out, ...SLOW], { timeoutMs: 120_000 });
    await cli.waitFor(/prepare: [1-9]\d*% \(/, 60_000);
    cli.proc.kill('SIGINT');
    const r = await cli.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted; nothing was written to --out/);
    assert.ok(!existsSync(out));
    assert.deepEqual((await readdir(tmp)).filter((n) => n.startsWith('.ds.')), []);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
