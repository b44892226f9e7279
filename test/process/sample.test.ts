/**
 * `distgan sample` draws a grid from a run's newest checkpoint, and refuses a
 * missing or corrupt checkpoint with exit 2, writing nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCli, tempDir } from '../helpers/cli.js';

test('sample writes a PNG grid of N generated images from a checkpoint; bad checkpoints exit 2', { timeout: 180_000 }, async () => {
  const dir = await tempDir();
  try {
    const run = join(dir, 'run');
    const r = await runCli(['launch', '--workers', '1', '--dataset', 'mnist', '--width', '0.125', '--batch-size', '8', '--steps', '2', '--backend', 'wasm', '--metrics-port', '0', '--out', run]);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    for (const sub of ['generator', 'samples', 'checkpoints']) {
      assert.equal((await stat(join(run, sub))).mode & 0o777, 0o755, `${sub}/ is 0755 like the rest of the run folder`);
    }
    const out = join(dir, 'grid.png');
    const s = await runCli(['sample', '--checkpoint', run, '--count', '16', '--out', out]);
    assert.equal(s.code, 0, s.stderr.slice(-2000));
    assert.match(s.stderr, /wrote 16 samples of step 2/);
    assert.match(s.stderr, /backend/i, 'with no --backend, sample chooses like every other command (auto) and says so');
    const meta = await sharp(await readFile(out)).metadata();
    assert.equal(meta.format, 'png');
    assert.ok((meta.width ?? 0) >= 4 * 28 && meta.width === meta.height, `a square grid of 4×4 digits, got ${meta.width}×${meta.height}`);

    const bad = join(dir, 'bad.png');
    const missing = await runCli(['sample', '--checkpoint', join(dir, 'nope'), '--out', bad]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /does not exist \[DISTGAN_E_CHECKPOINT\]/);
    const corrupt = join(dir, 'corrupt.ckpt');
    await writeFile(corrupt, 'DGANCKPT not really');
    const c = await runCli(['sample', '--checkpoint', corrupt, '--out', bad]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /DISTGAN_E_CHECKPOINT/);
    assert.equal(existsSync(bad), false, 'nothing written on failure');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sample --help states each default once, and its backend default is auto', async () => {
  const h = await runCli(['sample', '--help']);
  assert.equal(h.code, 0);
  assert.doesNotMatch(h.stdout, /\(default: "/, 'no second, commander-made default');
  assert.match(h.stdout, /--count <n>\s+number of samples in the grid \(default 64\)/);
  assert.match(h.stdout, /--backend <name>[\s\S]*\(default auto/);
});
