/**
 * The exported generator is a plain tfjs LayersModel: a separate Node process
 * that imports only @tensorflow/tfjs-core, -layers and -backend-cpu (no
 * distgan code) loads it over HTTP with tfl.loadLayersModel and samples the
 * same images the trainer generates.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { exportGenerator, MODEL_JSON, WEIGHTS_BIN } from '../../src/shared/gan/export.js';
import { resolveGanOptions } from '../../src/shared/gan/options.js';
import { TfGanTrainer } from '../../src/shared/gan/trainer.js';
import { resolveModelSpec } from '../../src/shared/models/spec.js';
import { normalRows, Stream } from '../../src/shared/rng.js';

/** The repository root: the first folder above this file holding package.json (works from test/ and dist/test/). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test');
    dir = up;
  }
  return dir;
}

/** Runs in the child: plain tfjs, nothing else. */
const LOADER = `
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
await tf.setBackend('cpu');
const model = await tfl.loadLayersModel(process.env.MODEL_URL);
const z = JSON.parse(process.env.LATENTS);
const out = model.predict(tf.tensor2d(z.values, [z.n, z.dim]));
const result = { shape: out.shape, values: Array.from(out.dataSync()), metadata: model.getUserDefinedMetadata() };
process.stdout.write('RESULT ' + JSON.stringify(result) + '\\n');
`;

function loadInChild(url: string, latents: Float32Array, n: number, dim: number): Promise<{ shape: number[]; values: number[]; metadata: any }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', LOADER],
      {
        cwd: repoRoot(),
        env: { ...process.env, MODEL_URL: url, LATENTS: JSON.stringify({ n, dim, values: Array.from(latents) }) },
        timeout: 60_000,
        maxBuffer: 64 << 20,
      },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`child failed: ${err.message}\n${stderr}`));
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        if (line === undefined) return reject(new Error(`child printed no result:\n${stdout}\n${stderr}`));
        resolve(JSON.parse(line.slice('RESULT '.length)));
      },
    );
  });
}

let dir = '';
let server: Server;
let baseUrl = '';

before(async () => {
  await initBackend('cpu', { log: () => {} });
  dir = await mkdtemp(path.join(tmpdir(), 'distgan-export-'));
  server = createServer(async (req, res) => {
    try {
      const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      const body = await readFile(path.join(dir, path.normalize(rel)));
      res.writeHead(200, { 'content-type': rel.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('exportGenerator', () => {
  it('writes a folder that plain tfjs in a fresh process loads and samples identically', async () => {
    const spec = resolveModelSpec('dcgan', [28, 28, 1], { width: 1 / 32, latentDim: 16 });
    const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: 3, lr: 1e-3 }), [28, 28, 1]);
    try {
      // One step, so that weights and BN moving statistics are no longer the initial ones.
      const positions = Int32Array.from([0, 1, 2, 3]);
      const real = new Float32Array(4 * 784).map((_, i) => Math.cos(i));
      const d = await trainer.computeDGradients({ step: 0, positions, globalBatch: 4, real });
      trainer.applyDGradients(d.gradients, d.aux);
      const g = await trainer.computeGGradients({ step: 0, positions, globalBatch: 4 });
      trainer.applyGGradients(g.gradients, g.aux);

      const folder = await exportGenerator(trainer, dir);
      assert.equal(folder, path.join(dir, 'generator'));
      assert.deepEqual((await readdir(folder)).sort(), [MODEL_JSON, WEIGHTS_BIN]);
      assert.deepEqual(await readdir(dir), ['generator'], 'no temporary folder left behind');
      const json = JSON.parse(await readFile(path.join(folder, MODEL_JSON), 'utf8'));
      assert.equal(json.format, 'layers-model');
      assert.deepEqual(json.weightsManifest[0].paths, [WEIGHTS_BIN]);
      // Trainable weights plus BN moving statistics, float32.
      assert.equal((await readFile(path.join(folder, WEIGHTS_BIN))).length, 4 * (trainer.gParamCount + trainer.auxCount));

      const n = 3;
      const latents = normalRows(new Float32Array(n * 16), 3, Stream.FixedSampleLatent, 0, [0, 1, 2], 16);
      const expected = trainer.generate(latents, n);
      const child = await loadInChild(`${baseUrl}/generator/model.json`, latents, n, 16);
      assert.deepEqual(child.shape, [n, 28, 28, 1]);
      let maxErr = 0;
      for (let i = 0; i < expected.length; i++) maxErr = Math.max(maxErr, Math.abs(child.values[i]! - expected[i]!));
      assert.ok(maxErr <= 1e-6, `max abs difference ${maxErr}`);
      assert.deepEqual(child.metadata.distgan.spec, spec);
      assert.equal(child.metadata.distgan.step, 1);

      // Exporting again replaces the folder in one piece.
      const before = await readFile(path.join(folder, WEIGHTS_BIN));
      const d2 = await trainer.computeDGradients({ step: 1, positions, globalBatch: 4, real });
      trainer.applyDGradients(d2.gradients, d2.aux);
      const g2 = await trainer.computeGGradients({ step: 1, positions, globalBatch: 4 });
      trainer.applyGGradients(g2.gradients, g2.aux);
      await exportGenerator(trainer, dir);
      assert.deepEqual(await readdir(dir), ['generator']);
      assert.ok(!before.equals(await readFile(path.join(folder, WEIGHTS_BIN))));
      assert.equal(JSON.parse(await readFile(path.join(folder, MODEL_JSON), 'utf8')).userDefinedMetadata.distgan.step, 2);
    } finally {
      trainer.dispose();
    }
  });
});
