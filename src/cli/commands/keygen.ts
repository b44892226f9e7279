/**
 * `distgan keygen --out DIR [--workers N]`: makes the CURVE keys a multi-host
 * run needs (layout documented in src/transport/curve.ts and docs/multi-node.md).
 * Never overwrites a key: if any target file exists the command fails with
 * KeyError (exit 2) and writes nothing.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { ConfigError } from '../../shared/errors.js';
import { MAX_KEYGEN_WORKERS, writeKeys } from '../../transport/curve.js';

/** Worker key pairs made when --workers is not given. */
export const DEFAULT_KEYGEN_WORKERS = 2;

function parseWorkers(raw: string): number {
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_KEYGEN_WORKERS) {
    throw new ConfigError(`--workers: ${JSON.stringify(raw)} is not an integer in [1, ${MAX_KEYGEN_WORKERS}]`);
  }
  return n;
}

export function register(program: Command): void {
  program
    .command('keygen')
    .description('write CURVE key pairs for a coordinator and N workers (never overwrites existing keys)')
    .requiredOption('--out <dir>', 'folder to write the keys into; created with mode 0700 when missing')
    .option('--workers <n>', `number of worker key pairs, one per worker rank (default ${DEFAULT_KEYGEN_WORKERS})`)
    .action(async (opts: { out: string; workers?: string }) => {
      const workers = opts.workers === undefined ? DEFAULT_KEYGEN_WORKERS : parseWorkers(opts.workers);
      if (opts.out.trim() === '') throw new ConfigError('--out: an empty folder name');
      const { files } = await writeKeys(opts.out, workers);
      const out = opts.out;
      process.stdout.write(
        [
          `wrote ${files.length} key files:`,
          ...files.map((f) => `  ${f}${f.endsWith('.key') ? '   (secret, mode 0600)' : ''}`),
          '',
          'coordinator host:  --curve-secret-key ' + join(out, 'coordinator.key') + ' --authorized-keys ' + join(out, 'authorized'),
          `worker i (host i): --curve-secret-key ${join(out, 'worker-<i>.key')} --coordinator-public-key ${join(out, 'coordinator.pub')}`,
          'Copy each worker-<i>.key only to the host that runs worker i; coordinator.key never leaves the coordinator.',
          '',
        ].join('\n'),
      );
    });
}
