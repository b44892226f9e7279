/**
 * End to end: a real `distgan launch` (2 wasm workers, ring8, 20 steps, a
 * point every 5) leaves stats.jsonl and log.txt in its run folder;
 * `distgan report RUN` turns them into report.html and four PNG plots; the
 * page renders in a real headless Chromium with every curve drawn and no
 * console error; a --resume appends to the same log and the next report
 * shows both sessions. Bad input exits 2 with DISTGAN_E_CONFIG and writes
 * nothing. Needs `npx tsc -p .` (the CLI runs from dist/) and chromium
 * (`apt-get install -y chromium`; `npm test` installs it as root).
 *
 * The screenshots are kept in the test's temporary folder and their paths
 * printed, so a person can look at what the test saw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, runCli, tempDir } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width, height and the spread of pixel values of a PNG (decoded by sharp, which refuses a broken file). */
async function pngStats(path: string): Promise<{ width: number; height: number; stdev: number }> {
  const buf = readFileSync(path);
  assert.deepEqual([...buf.subarray(0, 8)], PNG_SIGNATURE, `${path} is not a PNG`);
  const { default: sharp } = await import('sharp');
  const meta = await sharp(buf).metadata();
  const stats = await sharp(buf).stats();
  assert.equal(meta.format, 'png');
  return { width: meta.width ?? 0, height: meta.height ?? 0, stdev: Math.max(...stats.channels.map((c) => c.stdev)) };
}

const TRAIN = ['--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--batch-size', '64', '--backend', 'wasm', '--metrics-port', '0', '--log-every', '5', '--workers', '2'];

test('launch writes stats.jsonl and log.txt; distgan report renders them (finished and resumed) in headless Chromium', { timeout: 120_000 }, async () => {
  assert.ok(existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js')), 'dist/src/cli/main.js is missing: build first with `npx tsc -p .`');
  assert.ok(existsSync(CHROMIUM), 'chromium is not installed: run `apt-get install -y chromium` (npm test installs it as root)');
  const { chromium } = await import('playwright-core');
  const tmp = await tempDir('distgan-report-');
  const run = join(tmp, 'run');
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    // Bad input first: coded errors, exit 2, nothing written.
    const missing = await runCli(['report', join(tmp, 'no-such-run')], { timeoutMs: 30_000 });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /no such folder \[DISTGAN_E_CONFIG\]/);
    mkdirSync(join(tmp, 'empty'));
    const empty = await runCli(['report', join(tmp, 'empty')], { timeoutMs: 30_000 });
    assert.equal(empty.code, 2, empty.stderr);
    assert.match(empty.stderr, /stats\.jsonl does not exist.*\[DISTGAN_E_CONFIG\]/);
    assert.deepEqual(readdirSync(join(tmp, 'empty')), []);

    const first = await runCli(['launch', ...TRAIN, '--steps', '20', '--out', run], { timeoutMs: 60_000 });
    assert.equal(first.code, 0, first.stderr.slice(-3000));

    // stats.jsonl: run_start, the two workers, steps 5/10/15/20, the final sample and checkpoint, run_end.
    const lines = readFileSync(join(run, 'stats.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => l.event), ['run_start', 'worker_joined', 'worker_joined', 'step', 'step', 'step', 'step', 'sample', 'checkpoint', 'run_end']);
    for (const l of lines) {
      assert.equal(typeof l.time, 'number');
      assert.ok(typeof l.elapsed === 'number' && l.elapsed >= 0 && l.elapsed < 60, `elapsed ${l.elapsed}`);
    }
    const start = lines[0]!;
    assert.deepEqual([start.format, start.startStep, start.totalSteps, start.globalBatch, start.worldSize, start.resumed, start.logEvery], ['distgan-stats/1', 0, 20, 64, 2, false, 5]);
    assert.equal((start.config as Record<string, unknown>).dataset, 'ring8');
    const steps = lines.filter((l) => l.event === 'step');
    assert.deepEqual(steps.map((l) => l.step), [5, 10, 15, 20]);
    assert.deepEqual(steps.map((l) => l.images), [320, 640, 960, 1280]);
    for (const s of steps) {
      for (const k of ['dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake', 'imagesPerSecond', 'stepSeconds', 'stepSecondsMax']) {
        assert.ok(typeof s[k] === 'number' && Number.isFinite(s[k]), `step ${s.step}: ${k} = ${JSON.stringify(s[k])}`);
      }
      assert.equal(s.steps, 5);
      assert.equal(s.workers, 2);
      assert.deepEqual(Object.keys(s.phaseSeconds as object), ['data', 'd_compute', 'd_exchange', 'g_compute', 'g_exchange', 'apply']);
      const bytes = s.exchangeBytes as { sent: number; received: number };
      assert.ok(bytes.sent > 0 && bytes.received > 0);
      assert.deepEqual((s.ranks as Array<{ rank: number }>).map((r) => r.rank), [0, 1]);
    }
    const end = lines[lines.length - 1]!;
    assert.equal(end.ok, true);
    assert.equal(end.step, 20);
    assert.equal((end.summary as { steps: number }).steps, 20);
    // log.txt: the plain progress lines and the log lines, timestamped.
    const log = readFileSync(join(run, 'log.txt'), 'utf8');
    assert.match(log, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ distgan: /);
    assert.match(log, /Z step 20\/20 100%/);
    assert.match(log, /Z run finished: 20 steps/);
    assert.match(log, /\[rank 1\] distgan: /);

    const rep = await runCli(['report', run], { timeoutMs: 30_000 });
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stderr, /report \(finished run, 4 logged points\)/);
    const plots = ['losses', 'accuracy', 'throughput', 'step-time'].map((id) => join(run, `report-${id}.png`));
    for (const p of plots) {
      const st = await pngStats(p);
      assert.deepEqual([st.width, st.height], [1000, 340], p);
      assert.ok(st.stdev > 5, `${p} looks blank (stdev ${st.stdev})`);
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: 30_000,
    });
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    // Self-contained: any request other than the file itself (or a data: URL) is a failure.
    page.on('request', (r) => {
      if (!r.url().startsWith('file://') && !r.url().startsWith('data:')) problems.push(`request: ${r.url()}`);
    });
    const look = async (htmlPath: string, shot: string) => {
      await page.goto(`file://${htmlPath}`, { timeout: 20_000 });
      await page.waitForFunction(() => {
        const img = document.querySelector('#sample') as HTMLImageElement | null;
        return img !== null && img.complete && img.naturalWidth > 0;
      }, null, { timeout: 10_000 });
      const seen = await page.evaluate(() => ({
        charts: Array.from(document.querySelectorAll('svg.chart')).map((svg) => ({
          id: svg.id,
          width: svg.getBoundingClientRect().width,
          series: Array.from(svg.querySelectorAll('path.series')).map((p) => ({
            key: p.getAttribute('data-series'),
            points: Number(p.getAttribute('data-points')),
            segments: (p.getAttribute('d') ?? '').split('L').length - 1,
            length: (p as SVGPathElement).getTotalLength(),
          })),
          markers: svg.querySelectorAll('line.marker').length,
        })),
        state: document.querySelector('#state')?.textContent,
        step: document.querySelector('#step')?.textContent,
        workers: document.querySelectorAll('#workers tr').length,
        sessions: document.querySelectorAll('#sessions tr').length,
        config: document.querySelectorAll('#config > div').length,
        sampleWidth: (document.querySelector('#sample') as HTMLImageElement).naturalWidth,
      }));
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`report screenshot: ${shot}`);
      const st = await pngStats(shot);
      assert.ok(st.width === 1440 && st.height > 1500, `screenshot ${st.width}×${st.height}`);
      assert.ok(st.stdev > 10, `screenshot looks blank (stdev ${st.stdev})`);
      return seen;
    };

    const seen = await look(join(run, 'report.html'), join(tmp, 'report.png'));
    assert.deepEqual(seen.charts.map((c) => c.id), ['chart-losses', 'chart-accuracy', 'chart-throughput', 'chart-step-time']);
    assert.deepEqual(seen.charts.map((c) => c.series.map((s) => s.key)), [
      ['dLoss', 'gLoss'], ['dAccuracyReal', 'dAccuracyFake'], ['imagesPerSecond'],
      ['stepSeconds', 'data', 'd_compute', 'd_exchange', 'g_compute', 'g_exchange', 'apply'],
    ]);
    for (const c of seen.charts) {
      assert.ok(c.width > 300, `${c.id} is ${c.width} px wide`);
      assert.equal(c.markers, 0);
      for (const s of c.series) {
        assert.equal(s.points, 4, `${c.id}/${s.key}`);
        assert.equal(s.segments, 3, `${c.id}/${s.key}`);
        assert.ok(s.length > 50, `${c.id}/${s.key} path is ${s.length} long`);
      }
    }
    assert.deepEqual([seen.state, seen.step, seen.workers, seen.sessions], ['finished', '20', 2, 1]);
    assert.ok(seen.config > 20, `${seen.config} config entries`);
    assert.ok(seen.sampleWidth > 100);

    // --resume appends to the same log; the report shows both sessions and where the run was resumed.
    const second = await runCli(['launch', ...TRAIN, '--resume', run, '--steps', '30'], { timeoutMs: 60_000 });
    assert.equal(second.code, 0, second.stderr.slice(-3000));
    const all = readFileSync(join(run, 'stats.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(all.slice(0, 10), lines);
    const resumed = all.slice(10);
    assert.deepEqual([resumed[0]!.event, resumed[0]!.startStep, resumed[0]!.resumed, resumed[0]!.runId], ['run_start', 20, true, start.runId]);
    assert.deepEqual(resumed.filter((l) => l.event === 'step').map((l) => [l.step, l.images]), [[25, 1600], [30, 1920]]);
    assert.equal(resumed[resumed.length - 1]!.event, 'run_end');
    const rep2 = await runCli(['report', run, '--out', join(tmp, 'out', 'resumed.html')], { timeoutMs: 30_000 });
    assert.equal(rep2.code, 0, rep2.stderr);
    for (const id of ['losses', 'accuracy', 'throughput', 'step-time']) assert.ok(existsSync(join(tmp, 'out', `resumed-${id}.png`)));
    const seen2 = await look(join(tmp, 'out', 'resumed.html'), join(tmp, 'report-resumed.png'));
    assert.deepEqual([seen2.state, seen2.step, seen2.sessions], ['finished', '30', 2]);
    for (const c of seen2.charts) {
      assert.equal(c.markers, 1, c.id);
      for (const s of c.series) assert.equal(s.points, 6, `${c.id}/${s.key}`);
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser?.close().catch(() => {});
    // Keep the screenshots and the run log for a person to look at; drop the bulky rest.
    rmSync(join(run, 'checkpoints'), { recursive: true, force: true });
    rmSync(join(run, 'generator'), { recursive: true, force: true });
  }
});
