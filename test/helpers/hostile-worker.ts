/**
 * A hostile but well-formed worker, for the gradient-guard tests: the real
 * Worker (real handshake, real trainer, real gradients) whose trainer is
 * wrapped so that at one step and phase its gradient is poisoned before it
 * is sent. Run as its own process:
 *
 *   node dist/test/helpers/hostile-worker.js <connect> <rank> <nan|inf|huge> <d|g> <step>
 *
 * `huge` writes 1e30 into 10 elements (finite, but it would overflow Adam's
 * float32 second moment); `nan` and `inf` write one NaN / +Inf.
 */
import { initBackend } from '../../src/shared/compute/backend.js';
import { openDataset } from '../../src/shared/data/open.js';
import type { GanTrainer, PhaseInput, PhaseResult } from '../../src/shared/gan/api.js';
import { VERSION } from '../../src/shared/version.js';
import { Worker } from '../../src/worker/worker.js';

const [connect, rankArg, kind, phase, stepArg] = process.argv.slice(2);
if (!connect || !rankArg || !['nan', 'inf', 'huge'].includes(kind ?? '') || !['d', 'g'].includes(phase ?? '') || !stepArg) {
  process.stderr.write('usage: hostile-worker <connect> <rank> <nan|inf|huge> <d|g> <step>\n');
  process.exit(2);
}
const poisonStep = Number(stepArg);

function poison(r: PhaseResult, input: PhaseInput, which: string): PhaseResult {
  if (which !== phase || input.step !== poisonStep) return r;
  const g = r.gradients;
  if (kind === 'huge') for (let i = 0; i < 10; i++) g[(i * 7919) % g.length] = 1e30;
  else g[g.length >> 1] = kind === 'nan' ? NaN : Infinity;
  process.stderr.write(`hostile: poisoned the ${which.toUpperCase()} gradient of step ${input.step} with ${kind}\n`);
  return r;
}

function wrap(t: GanTrainer): GanTrainer {
  return new Proxy(t, {
    get(target, prop, receiver) {
      if (prop === 'computeGradients') return async (name: string, input: PhaseInput) => poison(await target.computeGradients(name, input), input, name);
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const backend = await initBackend('wasm');
const worker = new Worker({
  connect,
  rank: Number(rankArg),
  backend: { name: backend.name, reason: backend.reason },
  openDataset: (ref, o) => openDataset(ref, o),
  joinTimeout: 120,
  version: VERSION,
  log: (line) => process.stderr.write(`${line}\n`),
  wrapTrainer: wrap,
});
try {
  const exit = await worker.run();
  process.exitCode = exit.code;
} catch (e) {
  process.stderr.write(`hostile worker: ${String(e)}\n`);
  process.exitCode = 1;
}
