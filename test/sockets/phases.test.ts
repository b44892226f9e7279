/**
 * A third phase is a table entry plus its loss, nothing else: this test
 * registers a toy phase ("decay": an L2 penalty on D's weights, every 2
 * steps, between D and G) and its loss, then trains a real coordinator and
 * two real workers in this process over real sockets (tcp and ipc). The
 * machine, the protocol, the coordinator and the worker are not touched.
 *
 * It checks that the phase ran on the due steps only, on every worker, in
 * table order; that its gradient was applied (the run's D weights differ
 * from a run without it); and that the replicas and the coordinator's
 * mirror still agree (the run completes only if every checksum matched).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { initBackend } from '../../src/shared/compute/backend.js';
import { registerPhase } from '../../src/shared/gan/phases.js';
import { registerPhaseLoss, type TfGanTrainer } from '../../src/shared/gan/trainer.js';
import type { GanTrainer, PhaseInput, PhaseResult } from '../../src/shared/gan/api.js';
import { TRANSPORTS, settleWithin, startCoordinator, startWorker, withTempDir } from '../helpers/in-process.js';

const DECAY = 0.05;

/** The toy loss: ½·λ·‖w_D‖² over this slice's share of the batch; its gradient is λ·w_D·share. */
async function decayLoss(trainer: TfGanTrainer, input: PhaseInput): Promise<PhaseResult> {
  const w = trainer.getState().dWeights;
  const share = input.positions.length / input.globalBatch;
  const gradients = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) gradients[i] = DECAY * w[i]! * share;
  return { gradients, aux: new Float32Array(0), stats: {}, computeSeconds: 0 };
}

async function train(transport: 'tcp' | 'ipc', dir: string, steps: number): Promise<{ dWeights: Float32Array; calls: Array<[string, number]> }> {
  await mkdir(dir, { recursive: true });
  const c = await startCoordinator({ transport, dir, worldSize: 2, config: { steps } });
  const calls: Array<[string, number]> = [];
  const spy = (t: GanTrainer): GanTrainer =>
    new Proxy(t, {
      get(target, prop, receiver) {
        if (prop === 'computeGradients') {
          return (phase: string, input: PhaseInput) => {
            calls.push([phase, input.step]);
            return target.computeGradients(phase, input);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const workers = [0, 1].map((rank) => startWorker(c.endpoint, { rank, wrapTrainer: spy }));
  try {
    const outcome = await c.outcome;
    assert.ok(outcome.ok, `the run completes (every replica checksum matched the mirror): ${outcome.ok ? '' : String(outcome.error)}\n${c.logs.join('\n')}`);
    return { dWeights: c.run.trainer.getState().dWeights, calls };
  } finally {
    await settleWithin(workers.map((w) => w.outcome), 10_000);
    await c.close();
  }
}

for (const transport of TRANSPORTS) {
  test(`a toy phase registered in the table trains with the coordinator and workers unchanged (${transport})`, { timeout: 120_000 }, async () => {
    await initBackend('wasm');
    await withTempDir(async (dir) => {
      const plain = await train(transport, `${dir}/plain`, 4);
      const removePhase = registerPhase({ name: 'decay', network: 'd', every: 2, data: false }, { after: 'd' });
      const removeLoss = registerPhaseLoss('decay', decayLoss);
      let withDecay;
      try {
        withDecay = await train(transport, `${dir}/decay`, 4);
      } finally {
        removeLoss();
        removePhase();
      }
      const ran = withDecay.calls.filter(([p]) => p === 'decay').map(([, s]) => s).sort();
      assert.deepEqual(ran, [0, 0, 2, 2], 'decay ran on steps 0 and 2 (every 2), once per worker');
      const order = withDecay.calls.filter(([, s]) => s === 0).map(([p]) => p);
      assert.deepEqual([...new Set(order)], ['d', 'decay', 'g'], 'between D and G, in table order');
      assert.equal(plain.calls.some(([p]) => p === 'decay'), false);
      let differ = 0;
      for (let i = 0; i < plain.dWeights.length; i++) if (plain.dWeights[i] !== withDecay.dWeights[i]) differ++;
      assert.ok(differ > plain.dWeights.length / 2, `the decay's gradient reached D's update on every replica (${differ} of ${plain.dWeights.length} weights differ)`);
    });
  });
}
