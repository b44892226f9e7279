import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DownsampledHistory } from '../../src/coordinator/downsampled-history.js';
import { STATUS_PAGE_DIR, STATUS_PAGE_FILES, StatusObserver, loadStatusPageAssets, nonFiniteAsString } from '../../src/coordinator/status-page.js';
import type { RunInfo, StepReport } from '../../src/coordinator/observer.js';
import { PACKAGE_ROOT } from '../../src/shared/version.js';

const info: RunInfo = {
  runId: 'run-1', dataset: 'mnist', model: 'dcgan', backend: 'wasm', version: '0.1.0', worldSize: 2,
  totalSteps: 1_000_000, startStep: 0, globalBatch: 64, outDir: '/tmp/run-1', startedAt: 1000,
};

function report(step: number, over: Partial<StepReport> = {}): StepReport {
  return {
    step, images: 64, dLoss: 1, gLoss: 2, dAccuracyReal: 0.5, dAccuracyFake: 0.5, stepSeconds: 0.25,
    phaseSeconds: { data: 0.01, d_compute: 0.1, d_exchange: 0.02, g_compute: 0.1, g_exchange: 0.01, apply: 0.01 },
    exchangeBytes: { sent: 100, received: 200 },
    ranks: [
      { rank: 0, computeSeconds: 0.2, dataSeconds: 0.01, timestamp: 1000 + step * 0.25 },
      { rank: 1, computeSeconds: 0.3, dataSeconds: 0.01, timestamp: 1000 + step * 0.25 },
    ],
    time: 1000 + step * 0.25,
    ...over,
  };
}

test('history keeps at most `capacity` points for any run length, and every step counts in the means', () => {
  const h = new DownsampledHistory(['v'] as const, 8);
  for (let s = 1; s <= 8; s++) h.add(s, { v: s });
  // Reaching capacity merges pairs: 4 points of 2 steps each.
  let snap = h.snapshot();
  assert.equal(snap.stride, 2);
  assert.deepEqual(snap.steps, [2, 4, 6, 8]);
  assert.deepEqual(snap.series.v, [1.5, 3.5, 5.5, 7.5]);
  h.add(9, { v: 9 });
  snap = h.snapshot();
  // The partly filled bucket shows as the newest point.
  assert.deepEqual(snap.steps, [2, 4, 6, 8, 9]);
  assert.equal(snap.series.v.at(-1), 9);

  const big = new DownsampledHistory(['a', 'b'] as const, 2000);
  const n = 1_000_003;
  for (let s = 1; s <= n; s++) big.add(s, { a: s, b: 1 });
  const b = big.snapshot();
  assert.ok(b.steps.length <= 2001, `${b.steps.length} points`);
  assert.ok(b.steps.length >= 1000, 'at least half the capacity stays in use');
  assert.equal(b.steps.at(-1), n, 'the newest step is always shown');
  assert.ok(b.series.b.every((v) => v === 1));
  // Mean over all points, weighted by bucket size, is the mean over all steps.
  const full = b.steps.length - 1; // last point is the partial bucket
  let sum = 0;
  for (let i = 0; i < full; i++) sum += b.series.a[i]! * b.stride;
  const covered = full * b.stride;
  sum += b.series.a[full]! * (n - covered);
  assert.ok(Math.abs(sum / n - (n + 1) / 2) < 1e-6 * n);
});

test('a NaN in a bucket survives merging (a divergence stays visible)', () => {
  const h = new DownsampledHistory(['v'] as const, 4);
  for (let s = 1; s <= 16; s++) h.add(s, { v: s === 5 ? NaN : 1 });
  const snap = h.snapshot();
  assert.equal(snap.series.v.filter((v) => Number.isNaN(v)).length, 1);
  assert.throws(() => new DownsampledHistory(['v'] as const, 5), /even integer/);
});

test('StatusObserver snapshot: run, progress, curves, workers, sample, checkpoint, failure', () => {
  let now = 1000;
  const s = new StatusObserver({ now: () => now, historyCapacity: 100 });
  assert.equal(s.snapshot().state, 'waiting');
  assert.equal(s.latestSamplePath(), undefined);
  s.runStarted(info);
  s.workerJoined({ rank: 0, host: 'a', pid: 1, backend: 'wasm' });
  s.workerJoined({ rank: 1, host: 'b', pid: 2, backend: 'wasm' });
  for (let step = 1; step <= 500; step++) s.stepCompleted(report(step, step === 300 ? { dLoss: NaN } : {}));
  s.sampleWritten(500, '/tmp/run-1/samples/step-500.png');
  s.checkpointWritten(500, '/tmp/run-1/checkpoints/step-500.ckpt', 1120);
  now = 1125;
  const snap = s.snapshot();
  assert.equal(snap.state, 'running');
  assert.equal(snap.run?.runId, 'run-1');
  assert.equal(snap.progress.step, 500);
  assert.equal(snap.progress.images, 500 * 64);
  assert.ok(Math.abs(snap.progress.imagesPerSecond! - 256) < 1e-6);
  assert.ok(Math.abs(snap.progress.stepsPerSecond! - 4) < 1e-6);
  assert.ok(Math.abs(snap.progress.etaSeconds! - (1_000_000 - 500) / 4) < 1e-3);
  assert.equal(snap.progress.lastStepAgeSeconds, 0);
  assert.equal(snap.progress.elapsedSeconds, 125);
  assert.ok(snap.history.steps.length <= 101);
  assert.equal(snap.history.steps.at(-1), 500);
  assert.ok(snap.history.series.dLoss.some((v) => Number.isNaN(v)));
  assert.equal(snap.workers.length, 2);
  assert.deepEqual(snap.workers.map((w) => [w.rank, w.host, w.connected, w.computeSeconds]), [[0, 'a', true, 0.2], [1, 'b', true, 0.3]]);
  assert.equal(s.latestSamplePath(), '/tmp/run-1/samples/step-500.png');
  assert.match(snap.sample!.url, /^\/samples\/latest\.png\?step=500&t=\d+$/);
  assert.equal(snap.checkpoint!.ageSeconds, 5);
  assert.deepEqual(snap.exchange, { sentBytes: 50_000, receivedBytes: 100_000 });

  // JSON keeps NaN visible as a string instead of null.
  const json = JSON.parse(s.snapshotJson()) as { history: { series: { dLoss: unknown[] } } };
  assert.ok(json.history.series.dLoss.includes('NaN'));
  assert.equal(JSON.stringify({ a: -Infinity }, nonFiniteAsString), '{"a":"-Infinity"}');

  s.workerLost(1, 'exited with code 1');
  s.runEnded(undefined, new Error('worker 1 failed'));
  const end = s.snapshot();
  assert.equal(end.state, 'failed');
  assert.equal(end.error, 'worker 1 failed');
  assert.equal(end.workerFailures, 1);
  assert.deepEqual(end.workers.map((w) => [w.rank, w.connected, w.lostReason]), [[0, true, null], [1, false, 'exited with code 1']]);
  assert.equal(end.progress.etaSeconds, null);
});

// ---- the page's static files ------------------------------------------------

const html = readFileSync(join(STATUS_PAGE_DIR, 'index.html'), 'utf8');
const css = readFileSync(join(STATUS_PAGE_DIR, 'status.css'), 'utf8');
const js = readFileSync(join(STATUS_PAGE_DIR, 'status.js'), 'utf8');
/** The markup and the code without their comments (which may talk about what they forbid). */
const markup = html.replace(/<!--[\s\S]*?-->/g, '');
const code = js.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

test('the page files are found in the package source tree, from dist/ as from src/', () => {
  // This test runs from dist/test/unit/, so the module that resolved the folder is dist/src/coordinator/status-page.js.
  assert.equal(STATUS_PAGE_DIR, join(PACKAGE_ROOT, 'src', 'coordinator', 'status-page'));
  const assets = loadStatusPageAssets();
  assert.deepEqual([...assets.keys()].sort(), ['/', '/status.css', '/status.js']);
  assert.deepEqual(Object.fromEntries([...assets].map(([k, a]) => [k, a.contentType])), {
    '/': 'text/html; charset=utf-8',
    '/status.css': 'text/css; charset=utf-8',
    '/status.js': 'text/javascript; charset=utf-8',
  });
  assert.equal(assets.get('/')!.body.toString('utf8'), html);
  for (const a of assets.values()) assert.match(a.etag, /^"[\w-]{27}"$/);
  assert.notEqual(assets.get('/status.js')!.etag, assets.get('/status.css')!.etag);
});

test('installed elsewhere (node_modules/distgan), the page files are read from that copy', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'distgan-install-'));
  try {
    const pkg = join(tmp, 'node_modules', 'distgan');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), readFileSync(join(PACKAGE_ROOT, 'package.json')));
    cpSync(join(PACKAGE_ROOT, 'dist', 'src'), join(pkg, 'dist', 'src'), { recursive: true, filter: (f) => !f.endsWith('.map') });
    cpSync(STATUS_PAGE_DIR, join(pkg, 'src', 'coordinator', 'status-page'), { recursive: true });
    writeFileSync(join(pkg, 'src', 'coordinator', 'status-page', 'index.html'), '<!doctype html><title>the installed copy</title>');
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', `
      const m = await import(${JSON.stringify(pathToFileURL(join(pkg, 'dist', 'src', 'coordinator', 'status-page.js')).href)});
      console.log(JSON.stringify({ dir: m.STATUS_PAGE_DIR, html: m.loadStatusPageAssets().get('/').body.toString() }));
    `], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 0, result.stderr);
    const seen = JSON.parse(result.stdout) as { dir: string; html: string };
    assert.equal(seen.dir, join(pkg, 'src', 'coordinator', 'status-page'));
    assert.match(seen.html, /the installed copy/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a missing page file fails loudly, naming it', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'distgan-page-'));
  try {
    writeFileSync(join(tmp, 'index.html'), html);
    writeFileSync(join(tmp, 'status.js'), js);
    assert.throws(() => loadStatusPageAssets(tmp), (e: unknown) => e instanceof Error && e.message.includes(join(tmp, 'status.css')) && /ENOENT/.test(e.message) && /installation is incomplete/.test(e.message));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('status.js parses (node --check), so a syntax error fails the suite', () => {
  const r = spawnSync(process.execPath, ['--check', join(STATUS_PAGE_DIR, 'status.js')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
});

test('the page is self-contained and has nothing a CSP without unsafe-inline/unsafe-eval would block', () => {
  assert.match(html, /^<!doctype html>/);
  // Self-contained: no external scripts, styles, fonts or images.
  for (const text of [html, css, js]) {
    assert.doesNotMatch(text, /(src|href)=["']?(https?:)?\/\//i);
    assert.doesNotMatch(text, /@import|url\(\s*['"]?(https?:)?\/\//i);
  }
  // The document loads exactly the files the server serves.
  const scripts = [...markup.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.deepEqual(scripts.map((m) => [/\bsrc="([^"]+)"/.exec(m[1]!)?.[1], m[2]]), [['/status.js', '']], 'one external script, no inline one');
  assert.deepEqual([...markup.matchAll(/<link\b[^>]*rel="stylesheet"[^>]*>/gi)].map((m) => /href="([^"]+)"/.exec(m[0])?.[1]), ['/status.css']);
  for (const href of ['/status.js', '/status.css']) assert.ok(Object.hasOwn(STATUS_PAGE_FILES, href), `${href} is served`);
  assert.doesNotMatch(markup, /<style\b/i, 'no inline <style>');
  assert.doesNotMatch(markup, /\sstyle\s*=/i, 'no style attributes');
  assert.doesNotMatch(markup, /\son[a-z]+\s*=/i, 'no inline event handlers');
  assert.doesNotMatch(markup, /javascript:/i);
  // The script must not create what the CSP blocks: style attributes, inline markup, eval.
  assert.doesNotMatch(code, /setAttribute\(\s*['"]style['"]/, 'style attributes (use element.style.x = …)');
  assert.doesNotMatch(code, /['"]?\bstyle['"]?\s*:/, 'a style attribute through el(tag, { style: … })');
  assert.doesNotMatch(code, /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write/, 'markup from strings');
  assert.doesNotMatch(code, /\beval\s*\(|new\s+Function\s*\(|set(Timeout|Interval)\(\s*['"]/, 'code from strings');
});

test('every element id that status.js looks up exists in index.html', () => {
  const ids = new Set([...markup.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!));
  const used = new Set<string>();
  for (const re of [/\$\('([\w-]+)'\)/g, /setText\('([\w-]+)'/g, /(?:drawChart|legend)\('([\w-]+)'/g, /emptyId: '([\w-]+)'/g]) {
    for (const m of code.matchAll(re)) used.add(m[1]!);
  }
  for (const m of code.matchAll(/\[((?:'[\w-]+',?\s*)+)\]\.forEach\(attachHover\)/g)) for (const id of m[1]!.match(/[\w-]+/g)!) used.add(id);
  assert.ok(used.size >= 30, `only ${used.size} ids found in status.js: the patterns above no longer match its code`);
  const missing = [...used].filter((id) => !ids.has(id));
  assert.deepEqual(missing, [], 'ids used by status.js but absent from index.html');
});
