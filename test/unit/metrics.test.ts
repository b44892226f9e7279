import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, register as globalRegistry } from 'prom-client';
import { PrometheusObserver, STEP_PHASES, DURATION_BUCKETS_SECONDS } from '../../src/coordinator/metrics.js';
import { ObserverFanout, type RunInfo, type StepReport } from '../../src/coordinator/observer.js';

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
