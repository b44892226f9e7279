/**
 * `distgan bench --suite compute|scaling|data|reduce`: side-by-side measurements in
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

const SUITES = ['compute', 'scaling', 'data', 'reduce'] as const;

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
    .description('measure throughput side by side: compute (backends, PyTorch CPU), scaling (plain vs 1 vs 2 workers, PyTorch DDP, exchange vs raw ZeroMQ), data (prefetch), reduce (star vs sharded reduction with simulated workers, raw ZeroMQ floor, summation vs memcpy)')
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
    .action(async (o: { suite: string; backend?: string; batchSize?: string; steps?: string; withCpu?: boolean; sideBySide: boolean; torch: boolean; workers?: string; params?: string; reduceShards?: string; simProcesses?: string; maxPassGib?: string }) => {
      const suite = oneOf(SUITES)(o.suite, '--suite');
      const backend = oneOf(BACKENDS)(o.backend ?? 'auto', '--backend');
      const batchSize = int(1, 4096)(o.batchSize ?? '64', '--batch-size');
      const steps = int(1, 10000)(o.steps ?? (suite === 'reduce' ? '3' : '10'), '--steps');
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
      } else {
        const m = await load<typeof import('../../../bench/data.js')>('data');
        result = (await m.runDataBench({ steps, log: logLine })) as unknown as Record<string, unknown>;
      }
      process.stdout.write(JSON.stringify(result) + '\n');
    });
}
