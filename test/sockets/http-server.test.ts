import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { Registry } from 'prom-client';
import { startHttpServer } from '../../src/coordinator/http-server.js';
import { PrometheusObserver } from '../../src/coordinator/metrics.js';
import { StatusObserver } from '../../src/coordinator/status-page.js';
import { ConfigError } from '../../src/shared/errors.js';

// The first 8 bytes of every PNG, then an arbitrary body: the server streams files, it does not decode them.
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100, 7)]);

async function get(url: string, method = 'GET'): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await fetch(url, { method, signal: AbortSignal.timeout(5000) });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

function setup() {
  const registry = new Registry();
  const status = new StatusObserver();
  const metrics = new PrometheusObserver(registry, { processMetrics: false });
  const runStarted = () => {
    const info = { runId: 'r1', dataset: 'ring8', model: 'mlp', backend: 'wasm', version: '0.1.0', worldSize: 1, totalSteps: 10, startStep: 0, globalBatch: 8, outDir: '/tmp/r1', startedAt: Date.now() / 1000 };
    metrics.runStarted(info);
    status.runStarted(info);
  };
  return { registry, status, metrics, runStarted };
}

test('serves /metrics, /, /api/status and the latest sample on an OS-assigned port; 404 and 405 otherwise', async () => {
  const { registry, status, metrics, runStarted } = setup();
  const dir = mkdtempSync(join(tmpdir(), 'distgan-http-'));
  const errors: unknown[] = [];
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, registry, status, onError: (e) => errors.push(e) });
  try {
    assert.ok(srv.port > 0);
    assert.equal(srv.url, `http://127.0.0.1:${srv.port}`);
    runStarted();
    const step = {
      step: 1, images: 8, dLoss: NaN, gLoss: 0.7, dAccuracyReal: 0.5, dAccuracyFake: 0.5, stepSeconds: 0.1,
      phaseSeconds: { data: 0, d_compute: 0.04, d_exchange: 0.01, g_compute: 0.04, g_exchange: 0.01, apply: 0 },
      exchangeBytes: { sent: 1, received: 2 }, ranks: [], time: Date.now() / 1000,
    };
    metrics.stepCompleted(step);
    status.stepCompleted(step);

    const m = await get(`${srv.url}/metrics`);
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('content-type'), registry.contentType);
    assert.match(m.body.toString(), /^distgan_loss\{network="discriminator"\} Nan$/m);
    assert.match(m.body.toString(), /^distgan_steps_total 1$/m);

    const page = await get(`${srv.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'none'/);
    assert.equal(page.body.toString(), status.pageHtml());

    const api = await get(`${srv.url}/api/status`);
    assert.equal(api.status, 200);
    assert.match(api.headers.get('content-type')!, /^application\/json/);
    assert.equal(api.headers.get('cache-control'), 'no-store');
    const j = JSON.parse(api.body.toString()) as { state: string; progress: { step: number }; latest: { dLoss: unknown } };
    assert.equal(j.state, 'running');
    assert.equal(j.progress.step, 1);
    assert.equal(j.latest.dLoss, 'NaN');

    // No sample yet → 404; then the file the observer was told about.
    assert.equal((await get(`${srv.url}/samples/latest.png`)).status, 404);
    const png = join(dir, 'step-000001.png');
    writeFileSync(png, PNG);
    status.sampleWritten(1, png);
    const img = await get(`${srv.url}/samples/latest.png?step=1&t=123`);
    assert.equal(img.status, 200);
    assert.equal(img.headers.get('content-type'), 'image/png');
    assert.deepEqual(img.body, PNG);
    const head = await get(`${srv.url}/samples/latest.png`, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(PNG.length));
    assert.equal(head.body.length, 0);
    // The file vanished (run folder cleaned up): 404, not a crash.
    rmSync(png);
    assert.equal((await get(`${srv.url}/samples/latest.png`)).status, 404);

    assert.equal((await get(`${srv.url}/nope`)).status, 404);
    assert.equal((await get(`${srv.url}/samples/../../etc/passwd`)).status, 404);
    const post = await get(`${srv.url}/metrics`, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.deepEqual(errors, []);
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a malformed request gets 400 and the server keeps serving', async () => {
  const { registry, status } = setup();
  const errors: unknown[] = [];
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, registry, status, onError: (e) => errors.push(e) });
  try {
    const reply = await new Promise<string>((resolve, reject) => {
      const c = connect(srv.port, '127.0.0.1', () => c.write('THIS IS NOT HTTP\r\n\r\n'));
      let buf = '';
      c.on('data', (d: Buffer) => (buf += d.toString()));
      c.on('end', () => resolve(buf));
      c.on('error', reject);
      c.setTimeout(5000, () => reject(new Error('no reply')));
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.equal(errors.length, 1);
    assert.equal((await get(`${srv.url}/metrics`)).status, 200);
  } finally {
    await srv.close();
  }
});

test('close() drops keep-alive connections and frees the port', async () => {
  const { registry, status } = setup();
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, registry, status });
  // A keep-alive client (as Prometheus is) must not hold close() up.
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: srv.port, path: '/metrics', agent: new Agent({ keepAlive: true }) }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
  const t0 = Date.now();
  await srv.close();
  await srv.close(); // idempotent
  assert.ok(Date.now() - t0 < 3000, 'close() waited for an idle keep-alive connection');
  // The port is free again.
  const again = await startHttpServer({ host: '127.0.0.1', port: srv.port, registry, status });
  await again.close();
});

test('a port in use or a bad port is a ConfigError naming the address, not a crash', async () => {
  const { registry, status } = setup();
  const first = await startHttpServer({ host: '127.0.0.1', port: 0, registry, status });
  try {
    await assert.rejects(
      startHttpServer({ host: '127.0.0.1', port: first.port, registry, status }),
      (e: unknown) => e instanceof ConfigError && e.message.includes(`127.0.0.1:${first.port}`) && /already in use/.test(e.message) && /--metrics-port/.test(e.message),
    );
  } finally {
    await first.close();
  }
  await assert.rejects(startHttpServer({ host: '127.0.0.1', port: 70000, registry, status }), ConfigError);
  await assert.rejects(startHttpServer({ host: '192.0.2.1', port: 0, registry, status }), (e: unknown) => e instanceof ConfigError && /192\.0\.2\.1/.test(e.message));
});
