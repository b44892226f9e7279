/**
 * `distgan bench --suite compute|scaling|data|reduce|reduce-hosts`: side-by-side measurements in
 * one process tree. Progress goes to stderr; the last stdout line is one JSON
 * object with the figures (docs/benchmarks.md records them).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { int, num, oneOf } from '../../shared/config.js';
import { BACKEND_REQUESTS as BACKENDS } from '../../shared/compute/backends.js';
import { PACKAGE_ROOT } from '../../shared/version.js';
import { logLine } from '../output.js';
import { ConfigError } from '../../shared/errors.js';

const SUITES = ['compute', 'scaling', 'data', 'reduce', 'reduce-hosts'] as const;

/** A comma-separated list of numbers, each checked by `each`. */
function list(raw: string, flag: string, each: (raw: string, flag: string) => number): number[] {
  const items = raw.split(',').map((x) => x.trim());
  if (items.some((x) => x === '')) throw new ConfigError(`${flag}: ${JSON.stringify(raw)} is not a comma-separated list of numbers`);
  return items.map((x) => each(x, flag));
}

async function load<T>(name: string): Promise<T> {
  return (await import(pathToFileURL(join(PACKAGE_ROOT, 'dist', 'bench', `${name}.js`)).href)) as T;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure throughput side by side: compute (backends, PyTorch CPU), scaling (plain vs 1 vs 2 workers, PyTorch DDP, exchange vs raw ZeroMQ), data (prefetch), reduce (star vs sharded reduction with simulated workers, raw ZeroMQ floor, summation vs memcpy; then across simulated hosts: exchange vs 2·S/B, a simulated GPU-speed step; reduce-hosts: that part alone)')
    .requiredOption('--suite <name>', `one of ${SUITES.join(', ')}`)
    // Defaults are applied below, not given to commander, so --help states each once.
    .option('--backend <name>', `backend to measure: ${BACKENDS.join(', ')} (default auto)`)
    .option('--batch-size <n>', 'batch (compute) or per-worker batch (scaling) (default 64)')
    .option('--steps <n>', 'timed steps per measurement (default 10; reduce: 3)')
    .option('--with-cpu', 'compute suite: also time the stock cpu backend (slow; default off)')
    .option('--no-side-by-side', 'compute suite: measure only the selected backend (default: the stock wasm variants and PyTorch too)')
    .option('--no-torch', 'skip the PyTorch peers: CPU at 1 and all threads (compute), DDP over gloo with 1 and 2 processes (scaling) (default: measured when /usr/bin/python3, or $DISTGAN_PYTHON, can import torch)')
    .option('--workers <list>', 'reduce suite: simulated worker counts (default 2,4,8,16,64)')
    .option('--params <list>', 'reduce suite: model sizes in millions of parameters, G + D (default 1,10,50)')
    .option('--reduce-shards <k>', 'reduce suite: shard owners of the sharded reduction (default 2)')
    .option('--sim-processes <n>', 'reduce suite: processes the simulated workers are spread over, at most (default 4)')
    .option('--max-pass-gib <x>', 'reduce suite: skip a configuration whose workers × parameters × 4 bytes exceed this many GiB (default 2.5)')
    // The simulated-hosts part of the reduce suite (bench/reduce-hosts.ts); alone as --suite reduce-hosts.
    .option('--no-hosts', 'reduce suite: skip the simulated-hosts part (network namespaces with tc rate limits; needs root and iproute2) (default: run it)')
    .option('--hosts <list>', 'reduce suite, simulated hosts: worker hosts for exchange vs 2·S/B (default 2,4,8)')
    .option('--host-rate <mbit>', 'reduce suite, simulated hosts: link rate of each host for exchange vs 2·S/B, Mbit/s (default 100)')
    .option('--host-width <x>', 'reduce suite, simulated hosts: MLP width on ring8 for exchange vs 2·S/B (default 8: 2.2 M parameters)')
    .option('--no-gpu-step', 'reduce suite, simulated hosts: skip the simulated GPU-speed step (default: run it)')
    .option('--gpu-hosts <list>', 'reduce suite, simulated GPU-speed step: worker hosts (default 1,2,4,8)')
    .option('--gpu-sleep <list>', 'reduce suite, simulated GPU-speed step: ms each worker sleeps per phase instead of computing (default 10,50)')
    .option('--gpu-params <m>', 'reduce suite, simulated GPU-speed step: millions of parameters, G + D (default 10)')
    .option('--gpu-rate <mbit>', 'reduce suite, simulated GPU-speed step: link rate of each host, Mbit/s (default 1000)')
    .action(async (o: { suite: string; backend?: string; batchSize?: string; steps?: string; withCpu?: boolean; sideBySide: boolean; torch: boolean; workers?: string; params?: string; reduceShards?: string; simProcesses?: string; maxPassGib?: string; hosts: boolean | string; hostRate?: string; hostWidth?: string; gpuStep: boolean; gpuHosts?: string; gpuSleep?: string; gpuParams?: string; gpuRate?: string }) => {
      const suite = oneOf(SUITES)(o.suite, '--suite');
      const backend = oneOf(BACKENDS)(o.backend ?? 'auto', '--backend');
      const batchSize = int(1, 4096)(o.batchSize ?? '64', '--batch-size');
      const steps = int(1, 10000)(o.steps ?? (suite.startsWith('reduce') ? '3' : '10'), '--steps');
      // Parsed before anything runs, so a bad flag exits 2 at once.
      const hostsOptions = {
        steps,
        hosts: list(typeof o.hosts === 'string' ? o.hosts : '2,4,8', '--hosts', int(1, 64)),
        rateMbit: num(0, 100_000, { exclusiveMin: true })(o.hostRate ?? '100', '--host-rate'),
        width: num(0, 16, { exclusiveMin: true })(o.hostWidth ?? '8', '--host-width'),
        gpuHosts: o.gpuStep ? list(o.gpuHosts ?? '1,2,4,8', '--gpu-hosts', int(1, 64)) : [],
        gpuSleepMs: o.gpuStep ? list(o.gpuSleep ?? '10,50', '--gpu-sleep', num(0, 60_000)) : [],
        gpuParams: num(0, 1000, { exclusiveMin: true })(o.gpuParams ?? '10', '--gpu-params'),
        gpuRateMbit: num(0, 100_000, { exclusiveMin: true })(o.gpuRate ?? '1000', '--gpu-rate'),
        log: logLine,
      };
      const runHosts = async (): Promise<Record<string, unknown>> => (await load<typeof import('../../../bench/reduce-hosts.js')>('reduce-hosts')).runReduceHostsBench(hostsOptions);
      let result: Record<string, unknown>;
      if (suite === 'compute') {
        const m = await load<typeof import('../../../bench/compute.js')>('compute');
        result = await m.runComputeBench({ backend, batchSize, steps, withCpu: Boolean(o.withCpu), sideBySide: o.sideBySide, torch: o.torch, log: logLine });
      } else if (suite === 'scaling') {
        const m = await load<typeof import('../../../bench/scaling.js')>('scaling');
        result = await m.runScalingBench({ backend, perWorkerBatch: batchSize, steps, torch: o.torch, log: logLine });
      } else if (suite === 'reduce') {
        const workers = list(o.workers ?? '2,4,8,16,64', '--workers', int(1, 1024));
        const params = list(o.params ?? '1,10,50', '--params', num(0, 1000, { exclusiveMin: true }));
        const shards = int(1, 64)(o.reduceShards ?? '2', '--reduce-shards');
        const simProcesses = int(1, 256)(o.simProcesses ?? '4', '--sim-processes');
        const maxPassGiB = num(0, 1 << 20, { exclusiveMin: true })(o.maxPassGib ?? '2.5', '--max-pass-gib');
        const m = await load<typeof import('../../../bench/reduce.js')>('reduce');
        result = await m.runReduceBench({ steps, workers, params, shards, simProcesses, maxPassGiB, log: logLine });
        if (o.hosts !== false) {
          const hosts = await runHosts();
          result = { ...result, hosts, shardedOverBound: hosts['shardedOverBound'] ?? null };
        }
      } else if (suite === 'reduce-hosts') {
        result = { suite: 'reduce-hosts', ...(await runHosts()) };
      } else {
        const m = await load<typeof import('../../../bench/data.js')>('data');
        result = (await m.runDataBench({ steps, log: logLine })) as unknown as Record<string, unknown>;
      }
      process.stdout.write(JSON.stringify(result) + '\n');
    });
}
