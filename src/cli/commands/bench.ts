/**
 * `distgan bench --suite compute|scaling|data`: side-by-side measurements in
 * one process tree. Progress goes to stderr; the last stdout line is one JSON
 * object with the figures (docs/benchmarks.md records them).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { int, oneOf } from '../../shared/config.js';
import { BACKEND_REQUESTS as BACKENDS } from '../../shared/compute/backends.js';
import { PACKAGE_ROOT } from '../../shared/version.js';
import { logLine } from '../output.js';

const SUITES = ['compute', 'scaling', 'data'] as const;

async function load<T>(name: string): Promise<T> {
  return (await import(pathToFileURL(join(PACKAGE_ROOT, 'dist', 'bench', `${name}.js`)).href)) as T;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure throughput side by side: compute (backends), scaling (plain vs 1 vs 2 workers, exchange vs raw ZeroMQ), data (prefetch)')
    .requiredOption('--suite <name>', `one of ${SUITES.join(', ')}`)
    .option('--backend <name>', 'backend to measure (default auto)', 'auto')
    .option('--batch-size <n>', 'batch (compute) or per-worker batch (scaling) (default 64)', '64')
    .option('--steps <n>', 'timed steps per measurement (default 10)', '10')
    .option('--with-cpu', 'compute suite: also time the stock cpu backend (slow; default off)')
    .option('--no-side-by-side', 'compute suite: measure only the selected backend (default: stock wasm variants too)')
    .action(async (o: { suite: string; backend: string; batchSize: string; steps: string; withCpu?: boolean; sideBySide: boolean }) => {
      const suite = oneOf(SUITES)(o.suite, '--suite');
      const backend = oneOf(BACKENDS)(o.backend, '--backend');
      const batchSize = int(1, 4096)(o.batchSize, '--batch-size');
      const steps = int(1, 10000)(o.steps, '--steps');
      let result: Record<string, unknown>;
      if (suite === 'compute') {
        const m = await load<typeof import('../../../bench/compute.js')>('compute');
        result = await m.runComputeBench({ backend, batchSize, steps, withCpu: Boolean(o.withCpu), sideBySide: o.sideBySide, log: logLine });
      } else if (suite === 'scaling') {
        const m = await load<typeof import('../../../bench/scaling.js')>('scaling');
        result = await m.runScalingBench({ backend, perWorkerBatch: batchSize, steps, log: logLine });
      } else {
        const m = await load<typeof import('../../../bench/data.js')>('data');
        result = (await m.runDataBench({ steps, log: logLine })) as unknown as Record<string, unknown>;
      }
      process.stdout.write(JSON.stringify(result) + '\n');
    });
}
