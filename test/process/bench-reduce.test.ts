/**
 * `distgan bench --suite reduce` as a user runs it (a real process tree: a
 * real coordinator, simulated workers, the raw routers, the summation
 * threads), at a tiny size: the last stdout line is one JSON object whose
 * fields exist and are sane (positive, finite, consistent with each other),
 * a configuration over --max-pass-gib is skipped and listed with its reason,
 * and a bad list exits 2 naming the flag. Never a speed threshold: speeds
 * are measured by the bench, not asserted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';

const positive = (x: unknown, what: string): void => assert.ok(typeof x === 'number' && Number.isFinite(x) && x > 0, `${what}: ${JSON.stringify(x)}`);
const nonNegative = (x: unknown, what: string): void => assert.ok(typeof x === 'number' && Number.isFinite(x) && x >= 0, `${what}: ${JSON.stringify(x)}`);

describe('distgan bench --suite reduce', () => {
  it('reports star, sharded and both raw floors per configuration, skips one over --max-pass-gib, and ends with sumShareOfMemcpy', { timeout: 120_000 }, async () => {
    // The suite may also have parts that need more than this test gives (simulated hosts); leave them out where the CLI offers that.
    const help = await runCli(['bench', '--help'], { timeoutMs: 30_000 });
    const extra = help.stdout.includes('--no-hosts') ? ['--no-hosts'] : [];
    // 2 × 52,752 parameters × 4 bytes = 0.0004 GiB per pass fits under 0.0006; 4 workers (0.0008) do not.
    // Both simulated workers in one process: fewer Node start-ups on a busy machine.
    const r = await runCli(['bench', '--suite', 'reduce', '--workers', '2,4', '--params', '0.05', '--steps', '1', '--max-pass-gib', '0.0006', '--sim-processes', '1', ...extra], { timeoutMs: 110_000 });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    assert.equal(j['suite'], 'reduce');
    assert.equal(j['steps'], 1);
    assert.equal(j['shards'], 2);
    assert.equal(j['simProcesses'], 1);
    positive(j['machine'].cores, 'machine.cores');
    assert.equal(j['machine'].loadAverageStart.length, 3);

    assert.equal(j['results'].length, 1);
    const c = j['results'][0];
    assert.equal(c.workers, 2);
    assert.equal(c.gParams + c.dParams, c.params);
    assert.ok(Math.abs(c.params - 50_000) < 10_000, `params ${c.params}`);
    assert.equal(c.bytesPerPhasePerWorker, (c.params * 4) / 2);
    for (const k of ['rawStar', 'rawSharded', 'star', 'sharded']) {
      const f = c[k];
      assert.equal(f.phases, 2, `${k}.phases`);
      for (const x of ['exchangeMsPerPhase', 'exchangeMsPerPhaseD', 'exchangeMsPerPhaseG']) positive(f[x], `${k}.${x}`);
      positive(f.cpuMsPerPhase.total, `${k}.cpuMsPerPhase.total`);
      for (const g of ['main', 'zmq', 'other']) nonNegative(f.cpuMsPerPhase[g], `${k}.cpuMsPerPhase.${g}`);
      assert.ok(Math.abs(f.cpuMsPerPhase.main + f.cpuMsPerPhase.zmq + f.cpuMsPerPhase.other - f.cpuMsPerPhase.total) < 0.01, `${k}: thread groups add up`);
      positive(f.cpuCores, `${k}.cpuCores`);
      positive(f.simCpuMsPerPhase, `${k}.simCpuMsPerPhase`);
    }
    for (const k of ['star', 'sharded']) {
      positive(c[k].coordinatorExchangeMsPerPhase, `${k}.coordinatorExchangeMsPerPhase`);
      positive(c[k].coordinatorPeakRssMiB, `${k}.coordinatorPeakRssMiB`);
      positive(c[k].runSeconds, `${k}.runSeconds`);
    }
    // Star's coordinator sums on its main thread; sharded's main thread sees no gradient bytes.
    positive(c.star.cpuMsPerPhase.main, 'star main-thread CPU');
    for (const k of ['starOverRaw', 'shardedOverRaw', 'shardedOverStar', 'shardedSumGBPerOwnerCpuSecond']) positive(c[k], k);

    assert.equal(j['skipped'].length, 1);
    assert.equal(j['skipped'][0].workers, 4);
    assert.match(j['skipped'][0].reason, /--max-pass-gib 0\.0006/);

    const s = j['summation'];
    assert.equal(s.workers, 4); // the largest --workers
    assert.equal(s.shards, 2);
    for (const p of ['memcpy', 'ownerAdd', 'jsAdd', 'jsInspect', 'wasmAddInspect']) positive(s.gbPerSecond[p], `summation.gbPerSecond.${p}`);
    assert.equal(s.shareOfMemcpy.memcpy, 1);
    assert.equal(s.wasmBitIdentical, true);
    positive(j['sumShareOfMemcpy'], 'sumShareOfMemcpy');
    assert.equal(j['sumShareOfMemcpy'], s.shareOfMemcpy.ownerAdd);
    assert.equal(j['sumShareOfMemcpyWorkers'], 4);
    assert.equal(j['sumShareOfMemcpyParams'], c.params);

    assert.match(r.stderr, /reduce: N=2, 0\.05 M parameters/);
    assert.match(r.stderr, /reduce: skipped N=4/);
  });

  it('a bad --workers list exits 2 naming the flag, before anything runs', async () => {
    const r = await runCli(['bench', '--suite', 'reduce', '--workers', '2,x'], { timeoutMs: 30_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--workers/);
    assert.equal(r.stdout.trim(), '');
  });
});
