/**
 * End to end: the real CLI trains (2 workers, ring8, mlp), a real Prometheus
 * scrapes it, every PromQL expression of every panel of the Grafana dashboard
 * returns data, the alert rules load and evaluate without error, and the
 * status page renders in a real headless Chromium with the sample grid and the
 * curves. Needs `npx tsc -p .` (the CLI runs from dist/), prometheus and
 * chromium (`apt-get install -y prometheus chromium`; `npm test` does both).
 *
 * The screenshot of the status page is kept in the run's temporary folder and
 * its path printed, so a person can look at what the test saw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, which } from '../helpers/cli.js';


function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A sleep that does not keep the process alive once nothing else does (for races against exits). */
const grace = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** A child process with its output kept (last 16 KB) for failure messages. */
interface Child {
  proc: ChildProcess;
  name: string;
  log(): string;
  exited: Promise<number | null>;
}

function start(name: string, cmd: string, args: string[], opts: { cwd?: string } = {}): Child {
  // Its own process group, so that the workers it spawns can be stopped with it.
  const proc = spawn(cmd, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } });
  let buf = '';
  const keep = (d: Buffer) => {
    buf = (buf + d.toString()).slice(-16_384);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  return { proc, name, log: () => buf, exited };
}

/** SIGINT (or SIGTERM), then SIGKILL to the whole group after `graceMs`. */
async function stop(c: Child | undefined, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null || c.proc.pid === undefined) return;
  const pid = c.proc.pid;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
  const done = await Promise.race([c.exited.then(() => true), grace(graceMs).then(() => false)]);
  try {
    // The group may still hold workers even when the leader has exited.
    process.kill(-pid, 'SIGKILL');
  } catch {
    // nothing left
  }
  if (!done) await Promise.race([c.exited, grace(5000)]);
}

/** Polls `fn` until it returns a value (not undefined) or the deadline passes. */
async function waitFor<T>(what: string, deadlineMs: number, fn: () => Promise<T | undefined>, children: Child[] = []): Promise<T> {
  const end = Date.now() + deadlineMs;
  let lastErr: unknown;
  while (Date.now() < end) {
    for (const c of children) {
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
        throw new Error(`${c.name} exited (${c.proc.exitCode ?? c.proc.signalCode}) while waiting for ${what}:\n${c.log()}`);
      }
    }
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = e;
    }
    await sleep(250);
  }
  const logs = children.map((c) => `--- ${c.name} ---\n${c.log().slice(-4000)}`).join('\n');
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${lastErr ? ` (last error: ${String(lastErr)})` : ''}\n${logs}`);
}

async function fetchText(url: string, timeoutMs = 5000): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

interface PromVectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(base: string, query: string, time?: number): Promise<PromVectorSample[] | number> {
  const params = new URLSearchParams({ query });
  if (time !== undefined) params.set('time', String(time));
  const r = await fetch(`${base}/api/v1/query?${params}`, { signal: AbortSignal.timeout(10_000) });
  const j = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
  if (j.status !== 'success') throw new Error(`query failed: ${query}: ${j.error}`);
  if (j.data!.resultType === 'scalar') return Number((j.data!.result as [number, string])[1]);
  assert.equal(j.data!.resultType, 'vector', query);
  return j.data!.result as PromVectorSample[];
}

interface DashboardPanel {
  title?: string;
  type: string;
  panels?: DashboardPanel[];
  targets?: Array<{ expr?: string; refId?: string }>;
  datasource?: { uid?: string };
}

/** Grafana variables → concrete values for a Prometheus that scrapes every second. */
function substitute(expr: string, vars: Record<string, string>): string {
  const out = expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const v = vars[name];
    if (v === undefined) throw new Error(`dashboard expression uses $${name}, which this test does not know how to substitute: ${expr}`);
    return v;
  });
  return out;
}

test('observability end to end: CLI → Prometheus → every dashboard query; status page in Chromium', { timeout: 240_000 }, async () => {
  const root = ROOT;
  const cli = join(root, 'bin', 'distgan.js');
  assert.ok(existsSync(join(root, 'dist', 'src', 'cli', 'main.js')), 'dist/src/cli/main.js is missing: build first with `npx tsc -p .`');
  const prometheusBin = which('prometheus');
  assert.ok(prometheusBin, 'prometheus is not installed: run `apt-get install -y prometheus` (npm test installs it as root)');
  const chromiumBin = '/usr/bin/chromium';
  assert.ok(existsSync(chromiumBin), 'chromium is not installed: run `apt-get install -y chromium` (npm test installs it as root)');
  const { chromium } = await import('playwright-core');

  const tmp = mkdtempSync(join(tmpdir(), 'distgan-observability-'));
  const runDir = join(tmp, 'run');
  const tsdb = join(tmp, 'prometheus-data');
  const profile = join(tmp, 'chromium-profile');
  const metricsPort = await freePort();
  const promPort = await freePort();
  const metricsBase = `http://127.0.0.1:${metricsPort}`;
  const promBase = `http://127.0.0.1:${promPort}`;

  let run: Child | undefined;
  let prom: Child | undefined;
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  /** The status page check, run beside the Prometheus checks; settles to its error, or undefined. */
  let statusPage: Promise<unknown> = Promise.resolve(undefined);
  try {
    // A run long enough that it is still training when the checks finish; the
    // test stops it (SIGINT, as a user's Ctrl-C) instead of racing its end.
    run = start('distgan launch', process.execPath, [
      cli, 'launch', '--workers', '2', '--dataset', 'ring8', '--model', 'mlp', '--steps', '20000',
      '--metrics-port', String(metricsPort), '--out', runDir, '--log-format', 'plain', '--log-every', '50',
      '--sample-every', '10', '--checkpoint-every', '20', '--backend', 'wasm',
    ], { cwd: root });

    // Prometheus with the repository's alert rules, scraping the run every second.
    const config = join(tmp, 'prometheus.yml');
    writeFileSync(config, [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(join(root, 'deploy', 'prometheus', 'alerts.yml'))}`,
      'scrape_configs:',
      '  - job_name: distgan',
      '    scrape_interval: 1s',
      '    scrape_timeout: 900ms',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${metricsPort}']`,
      '',
    ].join('\n'));
    prom = start('prometheus', prometheusBin, [
      `--config.file=${config}`, `--storage.tsdb.path=${tsdb}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
    ]);
    await waitFor('Prometheus to be ready', 30_000, async () => ((await fetch(`${promBase}/-/ready`)).ok ? true : undefined), [prom]);

    // The CLI's endpoint comes up once the run folder and model exist.
    await waitFor('the coordinator to serve /metrics', 90_000, async () => ((await fetch(`${metricsBase}/metrics`)).ok ? true : undefined), [run]);
    const scraped = await fetchText(`${metricsBase}/metrics`);
    assert.match(scraped.type, /^text\/plain; version=0\.0\.4/);

    // The status page in a real headless Chromium, checked while Prometheus
    // gathers the history the queries below need (the run trains meanwhile).
    const checkStatusPage = async (): Promise<void> => {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumBin,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        viewport: { width: 1440, height: 1000 },
        timeout: 30_000,
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${metricsBase}/`, { timeout: 20_000 });
      await page.waitForFunction(() => {
        const img = document.querySelector('#sample') as HTMLImageElement | null;
        return img !== null && img.complete && img.naturalWidth > 0;
      }, null, { timeout: 20_000 });
      // Wait for a poll that has enough history to draw lines, not single dots.
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#chart-loss path.series')).every((p) => Number(p.getAttribute('data-points')) > 1), null, { timeout: 20_000 });
      const seen = await page.evaluate(() => ({
        naturalWidth: (document.querySelector('#sample') as HTMLImageElement).naturalWidth,
        sampleSrc: (document.querySelector('#sample') as HTMLImageElement).getAttribute('src'),
        series: Array.from(document.querySelectorAll('path.series')).map((p) => [p.getAttribute('data-series'), Number(p.getAttribute('data-points'))] as [string, number]),
        state: document.querySelector('#state')?.textContent,
        workers: document.querySelectorAll('#workers tr').length,
        step: document.querySelector('#step')?.textContent,
      }));
      assert.ok(seen.naturalWidth > 0, 'the sample grid image loaded');
      assert.match(seen.sampleSrc ?? '', /^\/samples\/latest\.png\?step=\d+/);
      const points = Object.fromEntries(seen.series);
      for (const key of ['dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake', 'imagesPerSecond']) {
        assert.ok((points[key] ?? 0) > 1, `curve ${key} has ${points[key]} points`);
      }
      assert.equal(seen.state, 'running');
      assert.equal(seen.workers, 2);
      assert.ok(Number(seen.step) > 0);
      assert.deepEqual(pageErrors, []);
      const shot = join(tmp, 'status-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`status page screenshot: ${shot}`);
    };
    statusPage = checkStatusPage().then(() => undefined, (e: unknown) => e);

    // Train until a checkpoint and a sample grid exist, and Prometheus has
    // seen the images counter move for long enough to feed 10 s rate windows.
    await waitFor('a checkpoint timestamp in Prometheus', 120_000, async () => {
      const r = await promQuery(promBase, 'distgan_checkpoint_last_timestamp_seconds{job="distgan"}');
      return Array.isArray(r) && r.length > 0 ? true : undefined;
    }, [run, prom]);
    await waitFor('two scrapes with images_total increasing, 12 s apart', 60_000, async () => {
      const now = Date.now() / 1000;
      const a = await promQuery(promBase, 'distgan_images_total{job="distgan"}', now - 12);
      const b = await promQuery(promBase, 'distgan_images_total{job="distgan"}', now);
      if (!Array.isArray(a) || !Array.isArray(b) || a.length !== 1 || b.length !== 1) return undefined;
      return Number(b[0]!.value[1]) > Number(a[0]!.value[1]) && Number(a[0]!.value[1]) > 0 ? true : undefined;
    }, [run, prom]);
    const sample = await fetch(`${metricsBase}/samples/latest.png`);
    assert.equal(sample.status, 200);
    assert.equal(sample.headers.get('content-type'), 'image/png');
    assert.deepEqual([...new Uint8Array(await sample.arrayBuffer()).slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]);

    // distgan_images_total increases between two scrapes.
    const evalTime = Date.now() / 1000;
    const i1 = await promQuery(promBase, 'distgan_images_total{job="distgan"}', evalTime - 3);
    const i2 = await promQuery(promBase, 'distgan_images_total{job="distgan"}', evalTime);
    assert.ok(Array.isArray(i1) && Array.isArray(i2) && i1.length === 1 && i2.length === 1);
    assert.ok(Number(i2[0]!.value[1]) > Number(i1[0]!.value[1]), `images_total did not increase: ${i1[0]!.value[1]} → ${i2[0]!.value[1]}`);

    // Every expression of every panel returns data (evaluated at one instant while training).
    const dashboard = JSON.parse(readFileSync(join(root, 'deploy', 'grafana', 'dashboards', 'distgan.json'), 'utf8')) as {
      panels: DashboardPanel[];
      templating: { list: Array<{ name: string; type: string; query?: unknown; definition?: string; current?: { value?: string } }> };
    };
    const vars: Record<string, string> = {
      job: 'distgan',
      instance: `127.0.0.1:${metricsPort}`,
      datasource: 'distgan-prometheus',
      __rate_interval: '10s',
      __interval: '2s',
      __range: '1m',
    };
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const queried: string[] = [];
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        assert.ok(t.expr, `panel "${p.title}" target ${t.refId} has no expr`);
        const expr = substitute(t.expr, vars);
        const r = await promQuery(promBase, expr, evalTime);
        assert.ok(Array.isArray(r) && r.length > 0, `panel "${p.title}" (${t.refId}) returned no data: ${expr}`);
        assert.ok(r.some((s) => Number.isFinite(Number(s.value[1]))), `panel "${p.title}" (${t.refId}) returned no finite value: ${expr} → ${JSON.stringify(r)}`);
        queried.push(`${p.title}/${t.refId}`);
      }
    }
    assert.ok(queried.length >= 25, `only ${queried.length} panel queries found`);
    // Panels point at the datasource variable, whose default is the provisioned uid.
    for (const p of panels) if (p.targets?.length) assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" datasource`);
    const dsVar = dashboard.templating.list.find((v) => v.type === 'datasource');
    const provisioned = readFileSync(join(root, 'deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8');
    assert.ok(dsVar?.current?.value && provisioned.includes(`uid: ${dsVar.current.value}`), 'datasource variable default = provisioned uid');
    // The dashboard's own variable queries find this run.
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      const m = /^label_values\((.*),\s*(\w+)\)$/.exec(v.definition ?? '');
      assert.ok(m, `variable ${v.name}: unsupported definition ${v.definition}`);
      const params = new URLSearchParams({ 'match[]': substitute(m[1]!, vars) });
      const r = (await (await fetch(`${promBase}/api/v1/label/${m[2]}/values?${params}`)).json()) as { data: string[] };
      assert.ok(r.data.includes(vars[v.name]!), `variable ${v.name} offers ${JSON.stringify(r.data)}, not ${vars[v.name]}`);
    }

    // The alert rules load into a real Prometheus and evaluate without errors; none fires on a healthy run.
    const rules = (await (await fetch(`${promBase}/api/v1/rules`)).json()) as {
      data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state?: string }> }> };
    };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    assert.equal(loaded.length, 6);
    for (const r of loaded) {
      assert.equal(r.health, 'ok', `rule ${r.name}: ${r.lastError}`);
      assert.notEqual(r.state, 'firing', `alert ${r.name} fires on a healthy run`);
    }

    // The status page checks started above.
    const pageError = await statusPage;
    if (pageError !== undefined) throw pageError;
  } finally {
    await statusPage;
    await context?.close().catch(() => {});
    await stop(run, 'SIGINT', 20_000);
    await stop(prom, 'SIGTERM', 10_000);
    // Keep the run folder and screenshot for a person to look at; drop the bulky rest.
    rmSync(tsdb, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
    rmSync(join(runDir, 'checkpoints'), { recursive: true, force: true });
  }
});
