import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Registry, register as globalRegistry } from 'prom-client';
import { PrometheusObserver, STEP_PHASES, DURATION_BUCKETS_SECONDS, METRIC_PREFIX, METRIC_TABLE } from '../../src/coordinator/metrics.js';
import type { Metric } from '../../src/coordinator/metric-table.js';
import { ObserverFanout, type RunInfo, type StepReport } from '../../src/coordinator/observer.js';
import { ROOT } from '../helpers/cli.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  raw: string;
  value: number;
}

/** Parses Prometheus text exposition (the subset prom-client writes: no timestamps, no escapes in our values). */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const pair of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: m[1]!, labels, raw: m[3]!, value: Number(m[3]) });
  }
  return { samples, types };
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function one(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample {
  const f = find(samples, name, labels);
  assert.equal(f.length, 1, `expected exactly one ${name}${JSON.stringify(labels)}, found ${f.length}`);
  return f[0]!;
}

const info: RunInfo = {
  runId: 'run-abc',
  dataset: 'ring8',
  model: 'mlp',
  backend: 'wasm',
  version: '0.1.0',
  worldSize: 2,
  totalSteps: 100,
  startStep: 40,
  globalBatch: 64,
  outDir: '/tmp/x',
  startedAt: 1_700_000_000,
};

function report(step: number, time: number, over: Partial<StepReport> = {}): StepReport {
  return {
    step,
    images: 64,
    dLoss: 0.69,
    gLoss: 0.71,
    dAccuracyReal: 0.55,
    dAccuracyFake: 0.45,
    stepSeconds: 0.5,
    phaseSeconds: { data: 0.002, d_compute: 0.2, d_exchange: 0.03, g_compute: 0.2, g_exchange: 0.03, apply: 0.02 },
    exchangeBytes: { sent: 1000, received: 3000 },
    ranks: [
      { rank: 0, computeSeconds: 0.4, dataSeconds: 0.002, timestamp: time - 0.01 },
      { rank: 1, computeSeconds: 0.9, dataSeconds: 0.001, timestamp: time },
    ],
    time,
    ...over,
  };
}

async function scrape(registry: Registry) {
  return parseExposition(await registry.metrics());
}

test('a run fed through the observer facade is exported with the documented names, labels and values', async () => {
  const registry = new Registry();
  const fan = new ObserverFanout([new PrometheusObserver(registry)], (e) => {
    throw e;
  });
  fan.runStarted(info);
  let { samples, types } = await scrape(registry);
  assert.equal(one(samples, 'distgan_run_info', { run_id: 'run-abc', dataset: 'ring8', model: 'mlp', backend: 'wasm', version: '0.1.0' }).value, 1);
  assert.equal(one(samples, 'distgan_world_size').value, 2);
  assert.equal(one(samples, 'distgan_workers').value, 0);
  assert.equal(one(samples, 'distgan_run_active').value, 1);
  assert.equal(one(samples, 'distgan_target_step').value, 100);
  assert.equal(one(samples, 'distgan_step').value, 40);
  // Seeded with the start so a run that never steps reads as stalled from its start.
  assert.equal(one(samples, 'distgan_last_step_timestamp_seconds').value, info.startedAt);
  // Before the first checkpoint the timestamp is absent, not 0 (1970).
  assert.equal(find(samples, 'distgan_checkpoint_last_timestamp_seconds').length, 0);
  // Counters with known labels exist at zero from the start so rate() sees the first increment.
  assert.equal(one(samples, 'distgan_exchange_bytes_total', { direction: 'sent' }).value, 0);
  assert.equal(one(samples, 'distgan_exchange_bytes_total', { direction: 'received' }).value, 0);
  for (const phase of STEP_PHASES) assert.equal(one(samples, 'distgan_step_phase_seconds_count', { phase }).value, 0);
  // Process and Node.js metrics keep their standard names, less the gauges named like counters.
  assert.ok(find(samples, 'process_cpu_seconds_total').length === 1, 'process metrics under their standard names');
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) assert.equal(find(samples, name).length, 0, `${name} (a gauge named like a counter) is left out`);

  fan.workerJoined({ rank: 0, host: 'node-a', pid: 11, backend: 'wasm' });
  fan.workerJoined({ rank: 1, host: 'node-b', pid: 12, backend: 'cpu' });
  const t = info.startedAt + 10;
  fan.stepCompleted(report(41, t));
  fan.stepCompleted(report(42, t + 0.5, { dLoss: 0.6, gLoss: 0.8, dAccuracyReal: 0.75, dAccuracyFake: 0.25, stepSeconds: 2, phaseSeconds: { data: 0.0005, d_compute: 0.7, d_exchange: 0.06, g_compute: 1.1, g_exchange: 0.04, apply: 0.1 } }));
  fan.checkpointWritten(42, '/tmp/x/checkpoints/step-000042.ckpt', t + 0.7);
  fan.peerRejected('bad key');

  ({ samples, types } = await scrape(registry));
  assert.equal(one(samples, 'distgan_workers').value, 2);
  assert.equal(one(samples, 'distgan_worker_up', { rank: '1' }).value, 1);
  assert.equal(one(samples, 'distgan_worker_info', { rank: '1', host: 'node-b', backend: 'cpu' }).value, 1);
  assert.equal(one(samples, 'distgan_steps_total').value, 2);
  assert.equal(one(samples, 'distgan_images_total').value, 128);
  assert.equal(one(samples, 'distgan_step').value, 42);
  assert.equal(one(samples, 'distgan_loss', { network: 'discriminator' }).value, 0.6);
  assert.equal(one(samples, 'distgan_loss', { network: 'generator' }).value, 0.8);
  assert.equal(one(samples, 'distgan_discriminator_accuracy_ratio', { split: 'real' }).value, 0.75);
  assert.equal(one(samples, 'distgan_discriminator_accuracy_ratio', { split: 'fake' }).value, 0.25);
  assert.equal(one(samples, 'distgan_exchange_bytes_total', { direction: 'sent' }).value, 2000);
  assert.equal(one(samples, 'distgan_exchange_bytes_total', { direction: 'received' }).value, 6000);
  assert.equal(one(samples, 'distgan_last_step_timestamp_seconds').value, t + 0.5);
  assert.equal(one(samples, 'distgan_worker_compute_seconds', { rank: '1' }).value, 0.9);
  assert.equal(one(samples, 'distgan_worker_data_seconds', { rank: '0' }).value, 0.002);
  assert.equal(one(samples, 'distgan_worker_last_step_timestamp_seconds', { rank: '0' }).value, t + 0.5 - 0.01);
  assert.equal(one(samples, 'distgan_checkpoint_last_timestamp_seconds').value, t + 0.7);
  assert.equal(one(samples, 'distgan_checkpoints_total').value, 1);
  assert.equal(one(samples, 'distgan_peer_rejections_total').value, 1);
  // Histograms: one observation per step, in the right buckets (0.5 s and 2 s steps).
  assert.equal(one(samples, 'distgan_step_seconds_count').value, 2);
  assert.equal(one(samples, 'distgan_step_seconds_sum').value, 2.5);
  assert.equal(one(samples, 'distgan_step_seconds_bucket', { le: '0.5' }).value, 1);
  assert.equal(one(samples, 'distgan_step_seconds_bucket', { le: '2.5' }).value, 2);
  assert.equal(one(samples, 'distgan_step_phase_seconds_bucket', { phase: 'data', le: '0.001' }).value, 1);
  assert.equal(one(samples, 'distgan_step_phase_seconds_bucket', { phase: 'g_compute', le: '1' }).value, 1);
  assert.equal(one(samples, 'distgan_step_phase_seconds_count', { phase: 'apply' }).value, 2);
  const les = find(samples, 'distgan_step_seconds_bucket').map((s) => s.labels.le);
  assert.deepEqual(les, [...DURATION_BUCKETS_SECONDS.map(String), '+Inf']);
  assert.equal(les[0], '0.001');
  assert.equal(DURATION_BUCKETS_SECONDS.at(-1), 60);
  // Throughput: first step 64 images over its 0.5 s, second 64 over 0.5 s wall → 128 img/s.
  assert.ok(Math.abs(one(samples, 'distgan_throughput_images_per_second').value - 128) < 1e-9);

  // Every declared metric is exported with its declared type and help (the
  // checkpoint timestamp too, now that one was written), and nothing else is.
  const help = new Map([...(await registry.metrics()).matchAll(/^# HELP (\S+) (.*)$/gm)].map((h) => [h[1]!, h[2]!]));
  assert.deepEqual([...types.keys()].filter((n) => n.startsWith(METRIC_PREFIX)).sort(), METRIC_TABLE.map((m) => m.name).sort());
  for (const m of METRIC_TABLE) {
    assert.equal(types.get(m.name), m.type, `${m.name} type`);
    assert.equal(help.get(m.name), m.help, `${m.name} help`);
  }
  // Labels on the series are the declared ones, with declared values where those are fixed.
  for (const s of samples.filter((x) => x.name.startsWith(METRIC_PREFIX))) {
    const m = METRIC_TABLE.find((x) => s.name === x.name || (x.type === 'histogram' && ['_bucket', '_sum', '_count'].some((suffix) => s.name === x.name + suffix)));
    assert.ok(m, `${s.name} is not in the metric table`);
    const declared = Object.keys(m.labels).concat(s.name === `${m.name}_bucket` ? ['le'] : []);
    assert.deepEqual(Object.keys(s.labels).sort(), declared.sort(), `${s.name} labels`);
    for (const [k, values] of Object.entries(m.labels)) {
      if (values !== 'open') assert.ok(values.includes(s.labels[k]!), `${s.name}{${k}="${s.labels[k]}"} is not a declared value`);
    }
  }

  // Types and naming conventions.
  assert.equal(types.get('distgan_images_total'), 'counter');
  assert.equal(types.get('distgan_steps_total'), 'counter');
  assert.equal(types.get('distgan_loss'), 'gauge');
  assert.equal(types.get('distgan_step_seconds'), 'histogram');
  assert.equal(types.get('distgan_step_phase_seconds'), 'histogram');
  for (const [name, type] of types) {
    // distgan's own series carry the prefix; the standard process/Node.js ones keep theirs.
    assert.ok(/^(distgan|process|nodejs)_/.test(name), `${name} is neither distgan_ nor a standard process_/nodejs_ metric`);
    if (type === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} must end in _total`);
    else assert.ok(!name.endsWith('_total'), `${type} ${name} must not end in _total`);
  }

  // A lost worker during the run is a failure and shows up as down.
  fan.workerLost(1, 'heartbeat timeout');
  ({ samples } = await scrape(registry));
  assert.equal(one(samples, 'distgan_workers').value, 1);
  assert.equal(one(samples, 'distgan_worker_up', { rank: '1' }).value, 0);
  assert.equal(one(samples, 'distgan_worker_failures_total').value, 1);

  fan.runEnded({ steps: 2, images: 128, imagesPerSecond: 100, dLoss: 0.6, gLoss: 0.8, dAccuracyReal: 0.75, dAccuracyFake: 0.25, worldSize: 2, backend: 'wasm', wallSeconds: 3, exchangeSecondsPerStep: 0.05 });
  fan.workerLost(0, 'shutdown');
  ({ samples } = await scrape(registry));
  assert.equal(one(samples, 'distgan_run_active').value, 0);
  assert.equal(one(samples, 'distgan_worker_failures_total').value, 1, 'workers leaving after the run ended are not failures');
});

test('a NaN or infinite loss is exported as NaN/Inf, not dropped or zeroed', async () => {
  const registry = new Registry();
  const obs = new PrometheusObserver(registry, { processMetrics: false });
  obs.runStarted(info);
  obs.stepCompleted(report(41, info.startedAt + 1, { dLoss: NaN, gLoss: Infinity, dAccuracyReal: NaN }));
  const text = await registry.metrics();
  const { samples } = parseExposition(text);
  const d = one(samples, 'distgan_loss', { network: 'discriminator' });
  assert.match(d.raw, /^nan$/i, `NaN loss exported as ${d.raw}`);
  assert.ok(Number.isNaN(d.value));
  assert.equal(one(samples, 'distgan_loss', { network: 'generator' }).raw, '+Inf');
  assert.match(one(samples, 'distgan_discriminator_accuracy_ratio', { split: 'real' }).raw, /^nan$/i);
  // The step itself still counts: the run did not stop, it diverged.
  assert.equal(one(samples, 'distgan_steps_total').value, 1);
});

test('no label carries a step number or any other unbounded value', async () => {
  const registry = new Registry();
  const obs = new PrometheusObserver(registry);
  obs.runStarted(info);
  obs.workerJoined({ rank: 0, host: 'h', pid: 1, backend: 'wasm' });
  for (let s = 41; s <= 100; s++) {
    obs.stepCompleted(report(s, info.startedAt + s, { ranks: [{ rank: 0, computeSeconds: 0.1, dataSeconds: 0, timestamp: info.startedAt + s }] }));
    if (s % 20 === 0) obs.checkpointWritten(s, `/tmp/x/checkpoints/step-${s}.ckpt`, info.startedAt + s);
  }
  const { samples } = await scrape(registry);
  const allowed = new Set(['network', 'split', 'phase', 'direction', 'rank', 'host', 'backend', 'le', 'run_id', 'dataset', 'model', 'version',
    // prom-client's process metrics:
    'type', 'space', 'kind', 'major', 'minor', 'patch']);
  for (const s of samples) {
    for (const [k, v] of Object.entries(s.labels)) {
      assert.ok(allowed.has(k), `unexpected label ${k} on ${s.name}`);
      assert.notEqual(k, 'step');
      if (s.name.startsWith('distgan_') && k !== 'le' && k !== 'rank' && k !== 'version' && k !== 'major' && k !== 'minor' && k !== 'patch') {
        assert.ok(!/^\d+$/.test(v), `${s.name} has a numeric label ${k}="${v}"`);
      }
    }
  }
  // 60 steps later the series count is what it was after one step: nothing grows with steps.
  const names = new Set(samples.filter((s) => s.name === 'distgan_loss' || s.labels.rank !== undefined).map((s) => JSON.stringify([s.name, s.labels])));
  assert.equal(names.size, 2 + 5, `series: ${[...names].join(' ')}`);
});

test('the observer writes only to the injected registry and refuses the global one', async () => {
  const before = await globalRegistry.metrics();
  const a = new Registry();
  const b = new Registry();
  new PrometheusObserver(a).runStarted(info);
  new PrometheusObserver(b).runStarted({ ...info, runId: 'other' });
  assert.notEqual(a, globalRegistry);
  assert.equal(await globalRegistry.metrics(), before);
  assert.ok(!before.includes('distgan_'));
  // Two observers on two registries do not collide and keep their own run.
  assert.match(await a.metrics(), /run_id="run-abc"/);
  assert.doesNotMatch(await a.metrics(), /run_id="other"/);
  assert.throws(() => new PrometheusObserver(globalRegistry), /own Registry/);
});

test('a second run on the same observer replaces the run info and per-rank series', async () => {
  const registry = new Registry();
  const obs = new PrometheusObserver(registry, { processMetrics: false });
  obs.runStarted(info);
  obs.workerJoined({ rank: 0, host: 'h', pid: 1, backend: 'wasm' });
  obs.workerJoined({ rank: 1, host: 'h', pid: 2, backend: 'wasm' });
  obs.runStarted({ ...info, runId: 'run-2', worldSize: 1 });
  const { samples } = await scrape(registry);
  assert.equal(find(samples, 'distgan_run_info').length, 1);
  assert.equal(one(samples, 'distgan_run_info').labels.run_id, 'run-2');
  assert.equal(find(samples, 'distgan_worker_up').length, 0);
  assert.equal(one(samples, 'distgan_workers').value, 0);
});

/** A row of one of docs/metrics.md's reference tables (header `| metric | type | unit | labels | meaning |`). */
interface DocRow {
  name: string;
  type: string;
  unit: string;
  /** Label names in order, each with its listed values ('open' when none are listed). */
  labels: [string, string[] | 'open'][];
  line: number;
}

const METRIC_HEADER = ['metric', 'type', 'unit', 'labels', 'meaning'];
/** Splits a table row on its unescaped pipes (`\|` separates label values inside a cell). */
const cells = (line: string) => line.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '').split(/(?<!\\)\|/).map((c) => c.trim());
const code = (cell: string, what: string) => {
  const m = /^`([^`]+)`$/.exec(cell.trim());
  assert.ok(m, `${what}: expected one \`code\` span, got ${JSON.stringify(cell)}`);
  return m[1]!;
};

/** Parses the labels cell: `—`, or `` `a`, `b` = `x` \| `y` ``. */
function parseLabels(cell: string, what: string): DocRow['labels'] {
  if (cell === '—') return [];
  return cell.split(',').map((part) => {
    const [name, values] = part.split(/ = /);
    return [code(name!, what), values === undefined ? 'open' : values.split('\\|').map((v) => code(v, what))];
  });
}

function parseMetricTables(doc: string): DocRow[] {
  const rows: DocRow[] = [];
  const lines = doc.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('|') || JSON.stringify(cells(lines[i]!)) !== JSON.stringify(METRIC_HEADER)) continue;
    assert.match(lines[i + 1]!, /^\|(---\|)+$/, `docs/metrics.md:${i + 2}: table separator`);
    for (let j = i + 2; j < lines.length && lines[j]!.startsWith('|'); j++) {
      const c = cells(lines[j]!);
      const what = `docs/metrics.md:${j + 1}`;
      assert.equal(c.length, METRIC_HEADER.length, `${what}: ${c.length} cells`);
      rows.push({ name: code(c[0]!, what), type: c[1]!, unit: c[2]!, labels: parseLabels(c[3]!, what), line: j + 1 });
    }
  }
  return rows;
}

/** The series names a metric exports (a histogram's _bucket, _sum and _count besides its own name). */
const seriesNames = (m: Metric) => (m.type === 'histogram' ? [m.name, `${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name]);
const exported = new Set(METRIC_TABLE.flatMap(seriesNames));
const mentioned = (text: string) => new Set([...text.matchAll(/\bdistgan_[a-z0-9_]+/g)].map((m) => m[0]));

/** What docs/metrics.md gets wrong against the metric table; empty when they agree. */
function docProblems(doc: string): string[] {
  const problems: string[] = [];
  const rows = parseMetricTables(doc);
  const byName = new Map<string, DocRow>();
  for (const r of rows) {
    if (byName.has(r.name)) problems.push(`docs/metrics.md:${r.line}: ${r.name} has a second row`);
    byName.set(r.name, r);
  }
  for (const m of METRIC_TABLE) {
    const r = byName.get(m.name);
    if (!r) {
      problems.push(`${m.name} (src/coordinator/metric-table.ts) has no row in docs/metrics.md`);
      continue;
    }
    const where = `docs/metrics.md:${r.line}: ${m.name}`;
    if (r.type !== m.type) problems.push(`${where}: type ${r.type}, code says ${m.type}`);
    if (r.unit !== m.unit) problems.push(`${where}: unit ${r.unit}, code says ${m.unit}`);
    const labels = Object.entries(m.labels).map(([k, v]) => [k, v === 'open' ? 'open' : [...v]]);
    if (JSON.stringify(r.labels) !== JSON.stringify(labels)) problems.push(`${where}: labels ${JSON.stringify(r.labels)}, code says ${JSON.stringify(labels)}`);
  }
  for (const r of rows) {
    if (!METRIC_TABLE.some((m) => m.name === r.name)) problems.push(`docs/metrics.md:${r.line}: ${r.name} is not a metric the code exports`);
  }
  // Nor may any prose or example query on the page name a series that does not exist.
  for (const name of mentioned(doc)) if (!exported.has(name)) problems.push(`docs/metrics.md mentions ${name}, which the code does not export`);
  return problems;
}

const metricsDoc = () => readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');

test('docs/metrics.md has a row for every metric in the table, with its type, unit and labels, and no other', () => {
  const doc = metricsDoc();
  assert.equal(parseMetricTables(doc).length, METRIC_TABLE.length);
  assert.deepEqual(docProblems(doc), []);
});

test('the docs check finds a missing or extra row, a wrong type, unit or label, and an unknown name (it can fail)', () => {
  const doc = metricsDoc();
  const broken = (from: string | RegExp, to: string) => {
    const b = doc.replace(from, to);
    assert.notEqual(b, doc, `${from} is in docs/metrics.md`);
    return docProblems(b);
  };
  const one = (problems: string[], re: RegExp) => {
    assert.equal(problems.length, 1, `expected one problem matching ${re}, got: ${problems.join('; ')}`);
    assert.match(problems[0]!, re);
  };
  one(broken(/^\| `distgan_workers` \|.*\n/m, ''), /distgan_workers .* has no row/);
  one(broken('| `distgan_step_seconds` | histogram | s |', '| `distgan_step_seconds` | histogram | ms |'), /distgan_step_seconds: unit ms, code says s/);
  one(broken('| `distgan_steps_total` | counter |', '| `distgan_steps_total` | gauge |'), /distgan_steps_total: type gauge/);
  one(broken('| loss value | `network` = `discriminator` \\| `generator` |', '| loss value | `network` = `generator` \\| `discriminator` |'), /distgan_loss: labels/);
  one(broken('| `distgan_worker_up` | gauge | 0/1 | `rank` |', '| `distgan_worker_up` | gauge | 0/1 | `rank`, `host` |'), /distgan_worker_up: labels/);
  const extra = broken(/^(\| `distgan_workers` \|.*\n)/m, '$1| `distgan_workers_wanted` | gauge | workers | — | not a metric |\n');
  assert.ok(extra.some((p) => /distgan_workers_wanted is not a metric the code exports/.test(p)), extra.join('\n'));
  one(broken('distgan_step{job="distgan"} / distgan_target_step', 'distgan_steps{job="distgan"} / distgan_target_step'), /mentions distgan_steps,/);
  assert.deepEqual(parseLabels('`phase` = `data` \\| `apply`, `rank`', 'x'), [['phase', ['data', 'apply']], ['rank', 'open']]);
});

test('the Grafana dashboards and the Prometheus rules query only metrics the code exports', () => {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(join(ROOT, 'deploy', 'grafana'));
  walk(join(ROOT, 'deploy', 'prometheus'));
  let seen = 0;
  for (const f of files) {
    for (const name of mentioned(readFileSync(f, 'utf8'))) {
      assert.ok(exported.has(name), `${f} uses ${name}, which the code does not export`);
      seen++;
    }
  }
  assert.ok(seen > 20, `only ${seen} metric names found under deploy/`);
});

test('the metric table follows Prometheus naming: prefix, base units, _total on counters only, bounded labels', () => {
  const names = METRIC_TABLE.map((m) => m.name);
  assert.equal(new Set(names).size, names.length, 'names are unique');
  for (const m of METRIC_TABLE) {
    const n = m.name;
    assert.match(n, /^distgan_[a-z][a-z0-9_]*[a-z0-9]$/, `${n}: distgan_ prefix, snake_case`);
    assert.ok(n.startsWith(METRIC_PREFIX));
    // promtool check metrics: counters end in _total, and nothing else does.
    assert.equal(n.endsWith('_total'), m.type === 'counter', `${n} is a ${m.type}: _total is for counters only`);
    assert.ok(!/_total_|_(count|sum|bucket)$/.test(n), `${n}: reserved suffix`);
    // Base units only.
    const nonBase = ['milliseconds', 'microseconds', 'nanoseconds', 'ms', 'us', 'ns', 'minutes', 'hours', 'days', 'percent', 'kilobytes', 'megabytes', 'gigabytes', 'kb', 'mb', 'gb', 'bits'];
    for (const word of n.split('_')) assert.ok(!nonBase.includes(word), `${n}: ${word} is not a base unit (seconds, bytes, ratio)`);
    const unitFor: [RegExp, string][] = [
      [/_timestamp_seconds$/, 'Unix s'],
      [/_seconds$/, 's'],
      [/_bytes(_total)?$/, 'bytes'],
      [/_ratio$/, 'ratio 0–1'],
      [/_info$/, '— (always 1)'],
      [/_per_second$/, `${n.replace(/^distgan_(throughput_)?/, '').replace(/_per_second$/, '')}/s`],
    ];
    const rule = unitFor.find(([re]) => re.test(n));
    if (rule) assert.equal(m.unit, rule[1], `${n}: its name says the unit is ${rule[1]}`);
    else assert.ok(!['s', 'Unix s', 'bytes', 'ratio 0–1', '— (always 1)'].includes(m.unit) && !m.unit.endsWith('/s'), `${n}: unit ${m.unit} belongs in the name (_seconds, _bytes, _ratio, _info, _per_second)`);
    assert.ok(m.help.length > 10 && m.help.endsWith('.') && !m.help.includes('\n'), `${n}: help is one sentence`);
    // Labels: valid, never `le` (histograms own it) or a step number.
    for (const [k, values] of Object.entries(m.labels)) {
      assert.match(k, /^[a-z][a-z0-9_]*$/, `${n}: label ${k}`);
      assert.ok(!['le', 'quantile', 'step', 'job', 'instance'].includes(k), `${n}: label ${k} is reserved or unbounded`);
      if (values !== 'open') assert.ok(values.length > 0 && new Set(values).size === values.length, `${n}: ${k} values`);
    }
    assert.equal(m.buckets !== undefined, m.type === 'histogram', `${n}: buckets are for histograms, and every histogram declares them`);
    if (m.buckets) assert.ok(m.buckets.every((b, i) => b > 0 && (i === 0 || b > m.buckets![i - 1]!)), `${n}: buckets ascend`);
    if (m.startAtZero) assert.ok(Object.values(m.labels).length > 0 && Object.values(m.labels).every((v) => v !== 'open'), `${n}: startAtZero needs fixed label values`);
    if (m.fromRun) assert.equal(m.type, 'gauge', `${n}: only gauges are set at run start`);
  }
});
