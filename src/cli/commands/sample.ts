/** `distgan sample`: a PNG grid of samples from a checkpoint's generator. */
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../../shared/atomic-write.js';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { int, oneOf } from '../../shared/config.js';
import { BACKEND_REQUESTS as BACKENDS, type BackendRequest } from '../../shared/compute/backends.js';
import { readCheckpoint } from '../../shared/checkpoint.js';
import { initBackend } from '../../shared/compute/backend.js';
import { TfGanTrainer } from '../../shared/gan/trainer.js';
import { resolveGanOptions } from '../../shared/gan/options.js';
import { sampleShapeOf, validateModelSpec } from '../../shared/models/spec.js';
import { renderSamples } from '../../shared/samples.js';
import { logLine } from '../output.js';

export function register(program: Command): void {
  program
    .command('sample')
    .description("write a grid of generated samples from a checkpoint (a run folder's newest, or a .ckpt file)")
    .requiredOption('--checkpoint <path>', 'run folder, checkpoints/ folder or .ckpt file')
    // Defaults are applied below, not given to commander, so --help states each once.
    .option('--count <n>', 'number of samples in the grid (default 64)')
    .option('--seed <n>', 'seed of the latents (default: the run seed, i.e. the same noise as the run\'s sample grids)')
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')} (default auto, as for every other command)`)
    .requiredOption('--out <file.png>', 'PNG file to write')
    .action(async (o: { checkpoint: string; count?: string; seed?: string; backend?: string; out: string }) => {
      const count = int(1, 4096)(o.count ?? '64', '--count');
      const backend = oneOf(BACKENDS)(o.backend ?? 'auto', '--backend') as BackendRequest;
      const ckpt = await readCheckpoint(o.checkpoint);
      await initBackend(backend, { log: logLine });
      const spec = ckpt.header.model as unknown;
      validateModelSpec(spec);
      const seed = o.seed !== undefined ? int(0, 2 ** 31 - 1)(o.seed, '--seed') : ckpt.header.training.seed;
      const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: ckpt.header.training.seed }), sampleShapeOf(spec));
      try {
        trainer.setState(ckpt.state);
        const png = renderSamples(trainer, spec, seed, count);
        const out = resolve(o.out);
        await mkdir(dirname(out), { recursive: true });
        await writeFileAtomic(out, png);
        logLine(`wrote ${count} samples of step ${ckpt.header.step} to ${out}`);
      } finally {
        trainer.dispose();
      }
    });
}
