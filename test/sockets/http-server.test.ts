import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { Registry } from 'prom-client';
import { PAGE_CSP, startHttpServer } from '../../src/coordinator/http-server.js';
import { PrometheusObserver } from '../../src/coordinator/metrics.js';
import { STATUS_PAGE_DIR, StatusObserver } from '../../src/coordinator/status-page.js';
import { BindError, ConfigError } from '../../src/shared/errors.js';
import { encodePng } from '../../src/shared/image/png.js';

// The first 8 bytes of every PNG, then an arbitrary body: the server streams files, it does not decode them.
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100, 7)]);

async function get(url: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await fetch(url, { method, headers, signal: AbortSignal.timeout(5000) });
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

    // The page and its two files, byte for byte from src/coordinator/status-page/.
    const page = await get(`${srv.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy')!;
    assert.equal(csp, "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    assert.equal(csp, PAGE_CSP);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.deepEqual(page.body, readFileSync(join(STATUS_PAGE_DIR, 'index.html')));
    for (const [path, file, type] of [['/', 'index.html', 'text/html; charset=utf-8'], ['/status.js', 'status.js', 'text/javascript; charset=utf-8'], ['/status.css', 'status.css', 'text/css; charset=utf-8']] as const) {
      const r = await get(`${srv.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('content-type'), type, path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(r.headers.get('cache-control'), 'no-cache', path);
      assert.deepEqual(r.body, readFileSync(join(STATUS_PAGE_DIR, file)), path);
      const etag = r.headers.get('etag')!;
      assert.match(etag, /^"[\w-]+"$/, path);
      // A browser revalidating its copy gets a bodiless 304; a changed file (another ETag) gets the body.
      const same = await get(`${srv.url}${path}`, 'GET', { 'If-None-Match': etag });
      assert.equal(same.status, 304, path);
      assert.equal(same.body.length, 0, path);
      assert.equal(same.headers.get('etag'), etag, path);
      assert.equal((await get(`${srv.url}${path}`, 'GET', { 'If-None-Match': '"stale", W/"older"' })).status, 200, path);
      const headReq = await get(`${srv.url}${path}`, 'HEAD');
      assert.equal(headReq.status, 200, path);
      assert.equal(headReq.headers.get('content-length'), String(r.body.length), path);
      assert.equal(headReq.body.length, 0, path);
    }

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
    // Only the three page files are served, under their own names; nothing else of the folder or the tree.
    for (const path of ['/index.html', '/status-page/status.js', '/src/coordinator/status-page/index.html', '/status.js/', '/static/status.css', '/package.json']) {
      assert.equal((await get(`${srv.url}${path}`)).status, 404, path);
    }
    assert.equal((await get(`${srv.url}/status.js`, 'POST')).status, 405);
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

test('a status page folder with a file missing fails the start, naming the file', async () => {
  const { registry, status } = setup();
  const dir = mkdtempSync(join(tmpdir(), 'distgan-page-'));
  try {
    writeFileSync(join(dir, 'index.html'), readFileSync(join(STATUS_PAGE_DIR, 'index.html')));
    writeFileSync(join(dir, 'status.css'), readFileSync(join(STATUS_PAGE_DIR, 'status.css')));
    await assert.rejects(
      startHttpServer({ host: '127.0.0.1', port: 0, registry, status, statusPageDir: dir }),
      (e: unknown) => e instanceof Error && e.message.includes(join(dir, 'status.js')) && /installation is incomplete/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A StatusObserver in the middle of a 2-worker run: 150 steps of smooth curves, a sample grid, a checkpoint. */
function midRun(dir: string): StatusObserver {
  let now = Date.now() / 1000 - 30;
  const t0 = now;
  const status = new StatusObserver({ now: () => now });
  status.runStarted({ runId: 'run-page', dataset: 'ring8', model: 'mlp', backend: 'wasm', version: '0.1.0', worldSize: 2, totalSteps: 400, startStep: 0, globalBatch: 64, outDir: dir, startedAt: t0 });
  status.workerJoined({ rank: 0, host: 'node-a', pid: 11, backend: 'wasm' });
  status.workerJoined({ rank: 1, host: 'node-b', pid: 12, backend: 'wasm' });
  for (let s = 1; s <= 150; s++) {
    now = t0 + s * 0.2;
    status.stepCompleted({
      step: s, images: 64, stepSeconds: 0.2, time: now,
      dLoss: 1.4 - 0.4 * Math.exp(-s / 40) + 0.05 * Math.sin(s / 3),
      gLoss: 0.7 + 0.5 * (1 - Math.exp(-s / 50)) + 0.05 * Math.cos(s / 4),
      dAccuracyReal: 0.5 + 0.3 * (1 - Math.exp(-s / 30)),
      dAccuracyFake: 0.5 + 0.2 * Math.sin(s / 20),
      phaseSeconds: { data: 0.01, d_compute: 0.07, d_exchange: 0.02, g_compute: 0.07, g_exchange: 0.02, apply: 0.01 },
      exchangeBytes: { sent: 4096, received: 8192 },
      // Rank 1 is twice as slow: the workers table marks it as a straggler.
      ranks: [{ rank: 0, computeSeconds: 0.14, dataSeconds: 0.01, timestamp: now }, { rank: 1, computeSeconds: 0.3, dataSeconds: 0.01, timestamp: now }],
    });
  }
  // A 64×64 RGB checkerboard stands in for the sample grid.
  const data = new Uint8Array(64 * 64 * 3);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      const i = (y * 64 + x) * 3;
      data[i] = ((x >> 3) + (y >> 3)) % 2 ? 230 : 20;
      data[i + 1] = x * 4;
      data[i + 2] = y * 4;
    }
  }
  const png = join(dir, 'step-000150.png');
  writeFileSync(png, encodePng({ width: 64, height: 64, channels: 3, data }));
  status.sampleWritten(150, png);
  status.checkpointWritten(140, join(dir, 'step-000140.ckpt'), now - 3);
  return status;
}

test('the status page renders in headless Chromium under its CSP: no violations, no console errors', { timeout: 90_000 }, async () => {
  const chromiumBin = '/usr/bin/chromium';
  assert.ok(existsSync(chromiumBin), 'chromium is not installed: run `apt-get install -y chromium` (npm test installs it as root)');
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'distgan-status-page-'));
  const registry = new Registry();
  const status = midRun(dir);
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, registry, status });
  const browser = await chromium.launch({ executablePath: chromiumBin, headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'], timeout: 30_000 });
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning' || /Content Security Policy/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    // Registered before any page script runs (init scripts are injected by the browser, not subject to the CSP).
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { cspViolations: string[] }).cspViolations = seen;
      document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
    });
    const loaded: Array<[string, number, string]> = [];
    page.on('response', (r) => loaded.push([new URL(r.url()).pathname, r.status(), r.headers()['content-type'] ?? '']));

    await page.goto(`${srv.url}/`, { timeout: 20_000 });
    await page.waitForFunction(() => {
      const img = document.querySelector('#sample') as HTMLImageElement | null;
      return img !== null && img.complete && img.naturalWidth > 0 && !img.classList.contains('hidden');
    }, null, { timeout: 20_000 });
    // The stylesheet applied (dark background, the CSS variable of the throughput dot), and the script drew.
    const seen = await page.evaluate(() => ({
      background: getComputedStyle(document.body).backgroundColor,
      dot: getComputedStyle(document.querySelector('.dot.tput')!).backgroundColor,
      series: Array.from(document.querySelectorAll('path.series')).map((p) => [p.getAttribute('data-series'), Number(p.getAttribute('data-points'))] as [string, number]),
      state: document.querySelector('#state')?.textContent,
      step: document.querySelector('#step')?.textContent,
      workers: Array.from(document.querySelectorAll('#workers tr')).map((tr) => tr.textContent),
      straggler: document.querySelector('#workers td.straggler')?.textContent,
      fill: (document.querySelector('#fill') as HTMLElement).style.width,
      phaseSegments: Array.from(document.querySelectorAll('#phasebar div')).filter((d) => (d as HTMLElement).getBoundingClientRect().width > 0).length,
      conn: document.querySelector('#conn')?.textContent,
    }));
    assert.equal(seen.background, 'rgb(13, 16, 23)', 'status.css applied');
    assert.equal(seen.dot, 'rgb(169, 139, 255)', 'the stat dots take their colour from classes');
    assert.deepEqual(Object.fromEntries(seen.series), { dLoss: 150, gLoss: 150, dAccuracyReal: 150, dAccuracyFake: 150, imagesPerSecond: 150 });
    assert.equal(seen.state, 'running');
    assert.equal(seen.step, '150');
    assert.equal(seen.workers.length, 2);
    assert.match(seen.workers[1]!, /node-b/);
    assert.equal(seen.straggler, '300 ms');
    assert.equal(seen.fill, '37.5%');
    assert.equal(seen.phaseSegments, 6);
    assert.equal(seen.conn, 'live');
    const byPath = new Map(loaded.map(([p, st, type]) => [p, `${st} ${type}`]));
    assert.equal(byPath.get('/'), '200 text/html; charset=utf-8');
    assert.equal(byPath.get('/status.css'), '200 text/css; charset=utf-8');
    assert.equal(byPath.get('/status.js'), '200 text/javascript; charset=utf-8');
    assert.equal(byPath.get('/api/status'), '200 application/json; charset=utf-8');
    assert.equal(byPath.get('/samples/latest.png'), '200 image/png');

    // Hovering a chart builds the tooltip with its colour dots: the path that once set style attributes.
    const box = (await page.locator('#chart-loss').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    await page.waitForSelector('.chartbox .tip:not(.hidden)', { timeout: 5000 });
    const tip = await page.evaluate(() => {
      const t = document.querySelector('.chartbox .tip:not(.hidden)')!;
      return { text: t.textContent, dots: Array.from(t.querySelectorAll('.dot')).map((d) => getComputedStyle(d).backgroundColor) };
    });
    assert.match(tip.text ?? '', /^step \d+D [\d.]+G [\d.]+$/);
    assert.deepEqual(tip.dots, ['rgb(245, 165, 36)', 'rgb(78, 161, 255)']);
    // Let a few more polls (1.5 s apart) go through the same code.
    await page.waitForTimeout(3500);
    const shot = join(dir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`status page screenshot: ${shot}`);

    const violations = await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations.slice());
    assert.deepEqual(violations, [], 'CSP violations');
    assert.deepEqual(problems, [], 'console errors, page errors or failed requests');
    // The detector itself works: a style attribute set from the page's context is reported.
    await page.evaluate(() => document.body.setAttribute('style', 'outline: 1px solid red'));
    await page.waitForFunction(() => (window as unknown as { cspViolations: string[] }).cspViolations.length > 0, null, { timeout: 5000 });
    const caught = await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations[0]);
    assert.match(caught ?? '', /^style-src/);
  } finally {
    await browser.close().catch(() => {});
    await srv.close();
    // The screenshot stays for a person to look at; the rest of the folder is small.
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

test('a port in use or an address not of this machine is a BindError naming the flags; a bad port a ConfigError', async () => {
  const { registry, status } = setup();
  const first = await startHttpServer({ host: '127.0.0.1', port: 0, registry, status });
  try {
    await assert.rejects(
      startHttpServer({ host: '127.0.0.1', port: first.port, registry, status }),
      (e: unknown) => e instanceof BindError && e.code === 'DISTGAN_E_BIND' && e.message.includes(`--metrics-port ${first.port} (--metrics-host 127.0.0.1)`) && /already in use/.test(e.message),
    );
  } finally {
    await first.close();
  }
  await assert.rejects(startHttpServer({ host: '127.0.0.1', port: 70000, registry, status }), ConfigError);
  await assert.rejects(startHttpServer({ host: '192.0.2.1', port: 0, registry, status }), (e: unknown) => e instanceof BindError && /--metrics-host 192\.0\.2\.1/.test(e.message));
});
