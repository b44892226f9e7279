/**
 * `distgan bench --suite reduce-hosts` (the simulated-hosts part of `--suite
 * reduce`, bench/reduce-hosts.ts) as a user runs it, at tiny sizes: 2
 * simulated hosts in network namespaces with tc rate limits, a real
 * coordinator, simulated workers and, for sharded, one `distgan reducer` per
 * host. The last stdout line is one JSON object with every figure; this
 * checks that the fields are there and sane, never a speed (speeds are
 * measured by the bench, not asserted), and that the bench leaves no
 * namespace behind.
 *
 * Needs root and iproute2; without them the bench reports {available:
 * false, reason} and exits 0, which is checked instead.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { startCli } from '../helpers/cli.js';

function ipNetnsList(): string {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

/** Removes namespaces the bench started by this test left (only if it was killed before its own clean-up). */
function removeLeftovers(pid: number | undefined): string[] {
  if (pid === undefined) return [];
  const left = ipNetnsList()
    .split('\n')
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(`dgbh-${pid}-`));
  for (const n of left) {
    try {
      for (const p of execFileSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) process.kill(Number(p), 'SIGKILL');
      execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    } catch {
      // gone already
    }
  }
  return left;
}

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

describe('distgan bench --suite reduce-hosts', () => {
  it('2 simulated hosts, tiny sizes: one JSON line with exchange vs 2·S/B, raw TCP floors, the GPU-speed step and shardedOverBound; no namespace left', async () => {
    const run = startCli(['bench', '--suite', 'reduce-hosts', '--steps', '1', '--hosts', '2', '--host-rate', '200', '--host-width', '0.5', '--gpu-hosts', '1,2', '--gpu-sleep', '10', '--gpu-params', '0.05', '--gpu-rate', '1000'], { timeoutMs: 170_000 });
    let r;
    try {
      r = await run.done;
    } finally {
      const left = removeLeftovers(run.proc.pid);
      assert.deepEqual(left, [], 'the bench left network namespaces behind');
    }
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    assert.equal(result['suite'], 'reduce-hosts');
    if (result['available'] === false) {
      assert.equal(typeof result['reason'], 'string');
      assert.ok((result['reason'] as string).length > 0);
      const root = typeof process.getuid === 'function' && process.getuid() === 0;
      assert.ok(!root || /namespaces|iproute2|tc/.test(result['reason'] as string), result['reason'] as string);
      return;
    }
    assert.equal(result['available'], true);
    assert.equal(result['steps'], 1);
    assert.ok(Array.isArray(result['machine'].loadAverageStart));
    // Part 1: exchange against 2·S/B.
    const ex = result['exchange'];
    assert.equal(ex.model.kind, 'mlp');
    assert.ok(ex.model.params > 0 && ex.model.params === ex.model.gParams + ex.model.dParams);
    assert.equal(ex.link.nominalMbit, 200);
    assert.ok(num(ex.link.measuredMbit) && ex.link.measuredMbit > 0, JSON.stringify(ex.link));
    assert.equal(ex.results.length, 2);
    assert.deepEqual(ex.results.map((x: any) => `${x.reduction}/${x.workers}`).sort(), ['sharded/2', 'star/2']);
    for (const row of ex.results) {
      for (const k of ['exchangeMsPerPhase', 'exchangeMsPerPhaseMedian', 'exchangeMsPerPhaseD', 'exchangeMsPerPhaseG', 'stepMs', 'imagesPerSecond', 'boundMs', 'boundNominalMs', 'overBound', 'rawTcpMsPerPhase', 'rawTcpOverBound', 'overRawTcp']) {
        assert.ok(num(row[k]) && row[k] >= 0, `${row.reduction}: ${k} = ${row[k]}`);
      }
      assert.ok(row.boundMs > 0 && row.stepMs > 0 && row.imagesPerSecond > 0);
      assert.equal(row.phases, 2);
      assert.equal(row.bytesPerPhase, (row.bytesD + row.bytesG) / 2);
      // 2·S/B with S the mean bytes of a phase and B the measured rate.
      assert.ok(Math.abs(row.boundMs - (2 * row.bytesPerPhase) / ((ex.link.measuredMbit * 1e6) / 8 / 1000)) < 0.01 * row.boundMs + 0.01);
      assert.ok(Math.abs(row.overBound - row.exchangeMsPerPhase / row.boundMs) < 0.01);
      assert.ok(row.machineCpuBusy === null || (row.machineCpuBusy >= 0 && row.machineCpuBusy <= 1));
      assert.ok(row.runCpuCores === null || row.runCpuCores >= 0);
      assert.ok(num(row.linkDrops.host) && num(row.linkDrops.port));
      assert.ok(row.coordinatorExchangeMsPerPhase === null || row.coordinatorExchangeMsPerPhase >= 0);
    }
    assert.deepEqual(Object.keys(ex.shardedOverBoundByHosts), ['2']);
    assert.deepEqual(Object.keys(ex.starOverBound), ['2']);
    assert.ok(num(result['shardedOverBound']) && result['shardedOverBound'] > 0);
    assert.equal(result['shardedOverBound'], ex.shardedOverBoundByHosts['2']);
    // Part 2: the simulated GPU-speed step.
    const gpu = result['gpuStep'];
    assert.equal(gpu.model.kind, 'dcgan');
    assert.ok(gpu.model.params > 0);
    assert.equal(gpu.link.nominalMbit, 1000);
    assert.equal(gpu.results.length, 4);
    for (const row of gpu.results) {
      assert.equal(row.sleepMs, 10);
      assert.ok(num(row.stepMs) && row.stepMs >= 20, `a step of two 10 ms phases took ${row.stepMs} ms`);
      assert.ok(num(row.imagesPerSecond) && row.imagesPerSecond > 0);
      assert.ok(num(row.efficiency) && row.efficiency > 0);
      assert.ok(num(row.efficiencyVsCompute) && row.efficiencyVsCompute > 0 && row.efficiencyVsCompute <= 1.05);
      if (row.workers === 1) assert.equal(row.efficiency, 1);
    }
    for (const red of ['star', 'sharded']) assert.deepEqual(Object.keys(gpu.efficiency.sleep10[red]).sort(), ['1', '2']);
    assert.match(r.stderr, /raw TCP, host 1 → coordinator host, links at 200 Mbit\/s/);
  });
});
