/**
 * The Prometheus deploy files checked by the real promtool: the config and the
 * alert rules parse, and the alert unit tests (alerts.test.yml) pass. Also
 * lints a live exposition from PrometheusObserver, NaN included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { PrometheusObserver } from '../../src/coordinator/metrics.js';
import { ROOT, which } from '../helpers/cli.js';


function promtool(): string {
  const p = which('promtool');
  assert.ok(p, 'promtool is not installed: run `apt-get install -y prometheus` (Debian; it ships promtool), or `npm test`, which installs it as root');
  return p;
}

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { cwd: opts.cwd, timeout: 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

const dir = join(ROOT, 'deploy', 'prometheus');

test('promtool check config accepts deploy/prometheus/prometheus.yml and finds its rule file', async () => {
  const r = await run(promtool(), ['check', 'config', 'prometheus.yml'], { cwd: dir });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: 1 rule files found/);
  assert.match(r.out, /alerts\.yml/);
  // The scrape job is the one the docs and dashboard refer to.
  const cfg = parseYaml(readFileSync(join(dir, 'prometheus.yml'), 'utf8')) as {
    scrape_configs: Array<{ job_name: string; scrape_interval: string; metrics_path: string; static_configs: Array<{ targets: string[] }> }>;
  };
  const job = cfg.scrape_configs.find((j) => j.job_name === 'distgan');
  assert.ok(job, 'scrape job distgan');
  assert.equal(job.scrape_interval, '5s');
  assert.equal(job.metrics_path, '/metrics');
  assert.deepEqual(job.static_configs[0]!.targets, ['127.0.0.1:9464']);
});

test('promtool check rules accepts deploy/prometheus/alerts.yml', async () => {
  const r = await run(promtool(), ['check', 'rules', 'alerts.yml'], { cwd: dir });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: 6 rules found/);
});

test('promtool test rules: every alert fires in its firing case and stays quiet in its other case', async () => {
  const r = await run(promtool(), ['test', 'rules', 'alerts.test.yml'], { cwd: dir });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);

  // And the test file really covers every alert both ways.
  const rules = parseYaml(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string }> }> };
  const alerts = rules.groups.flatMap((g) => g.rules.map((x) => x.alert).filter((a): a is string => typeof a === 'string'));
  assert.equal(alerts.length, 6);
  const tests = parseYaml(readFileSync(join(dir, 'alerts.test.yml'), 'utf8')) as {
    tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
  };
  const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
  for (const a of alerts) {
    assert.ok(cases.some((c) => c.alertname === a && (c.exp_alerts?.length ?? 0) > 0), `${a} has no firing test case`);
    assert.ok(cases.some((c) => c.alertname === a && (c.exp_alerts?.length ?? 0) === 0), `${a} has no non-firing test case`);
  }
});

test('promtool test rules fails when an alert is broken (the test can fail)', async () => {
  // Same tests against a copy of the rules with the stall threshold raised tenfold.
  const tmp = mkdtempSync(join(tmpdir(), 'distgan-promtool-'));
  try {
    const rules = readFileSync(join(dir, 'alerts.yml'), 'utf8');
    const broken = rules.replace('> 300', '> 3000');
    assert.notEqual(broken, rules, 'the stall threshold is where this test expects it');
    writeFileSync(join(tmp, 'alerts.yml'), broken);
    writeFileSync(join(tmp, 'alerts.test.yml'), readFileSync(join(dir, 'alerts.test.yml')));
    const r = await run(promtool(), ['test', 'rules', 'alerts.test.yml'], { cwd: tmp });
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /DistganRunStalled/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('promtool check metrics parses and lints a full scrape (process and Node.js metrics included), NaN loss included', async () => {
  const registry = new Registry();
  const obs = new PrometheusObserver(registry);
  obs.runStarted({ runId: 'r', dataset: 'ring8', model: 'mlp', backend: 'wasm', version: '0.1.0', worldSize: 1, totalSteps: 5, startStep: 0, globalBatch: 64, outDir: '/tmp/r', startedAt: 1000 });
  obs.workerJoined({ rank: 0, host: 'h', pid: 1, backend: 'wasm' });
  obs.stepCompleted({
    step: 1, images: 64, dLoss: NaN, gLoss: Infinity, dAccuracyReal: 0.5, dAccuracyFake: 0.5, stepSeconds: 0.1,
    phaseSeconds: { data: 0.001, d_compute: 0.04, d_exchange: 0.01, g_compute: 0.04, g_exchange: 0.01, apply: 0.001 },
    exchangeBytes: { sent: 10, received: 20 }, ranks: [{ rank: 0, computeSeconds: 0.08, dataSeconds: 0.001, timestamp: 1001 }], time: 1001,
  });
  obs.checkpointWritten(1, '/tmp/r/c', 1002);
  const text = await registry.metrics();
  assert.match(text, /distgan_loss\{network="discriminator"\} Nan/);
  assert.match(text, /^process_cpu_seconds_total /m, 'standard process metric names');
  assert.match(text, /^nodejs_heap_size_used_bytes /m);
  const r = await run(promtool(), ['check', 'metrics'], { input: text });
  assert.equal(r.code, 0, `promtool check metrics: ${r.out}`);
});
