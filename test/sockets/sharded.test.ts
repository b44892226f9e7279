/**
 * The sharded reduction in this process, over real sockets: the coordinator,
 * its shard-owner threads and real Workers.
 *
 *  - bit-identical to star: 3 workers train the DCGAN on MNIST for 20 steps
 *    with star and with 2 and 3 shard owners; the mirror's weights, BN
 *    statistics and both Adam states are the same bits (and every checksum
 *    comparison on the way held). The MLP on ring8 does the same over each
 *    transport (tcp, ipc);
 *  - a stranger that pushes parts to a shard owner is dropped and counted,
 *    and the run completes with the same bits;
 *  - a worker whose part is non-finite is named by rank (the owners inspect
 *    parts for the coordinator's guard).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Dealer } from 'zeromq';
import { initBackend } from '../../src/shared/compute/backend.js';
import type { TrainerState } from '../../src/shared/gan/api.js';
import type { GanTrainer } from '../../src/shared/gan/api.js';
import { TRAINER_STATE_ARRAYS } from '../../src/shared/gan/api.js';
import type { RunConfig } from '../../src/shared/config.js';
import { MsgType, encode } from '../../src/shared/protocol.js';
import { TRANSPORTS, settleWithin, startCoordinator, startWorker, withTempDir, type Transport } from '../helpers/in-process.js';

before(async () => {
  await initBackend('wasm', { log: () => {} });
});

interface Trained {
  state: TrainerState;
  logs: string[];
  rejected: string[];
}

async function train(opts: { transport: Transport; workers: number; config: Partial<RunConfig>; wrap?: (rank: number) => ((t: GanTrainer) => GanTrainer) | undefined; during?: (endpoints: string[]) => Promise<void> }): Promise<Trained & { error?: unknown }> {
  return withTempDir(async (dir) => {
    const c = await startCoordinator({ transport: opts.transport, dir, worldSize: opts.workers, config: { checksumEvery: 5, stepTimeout: 60, ...opts.config } });
    const workers = Array.from({ length: opts.workers }, (_, r) => {
      const wrapTrainer = opts.wrap?.(r);
      return startWorker(c.endpoint, { rank: r, ...(wrapTrainer ? { wrapTrainer } : {}) });
    });
    try {
      if (opts.during) {
        const line = () => c.logs.find((l) => l.startsWith('sharded reduction:'));
        const eps = (line() ?? '').split(' ').filter((w) => /^(ipc|tcp):\/\//.test(w));
        await opts.during(eps);
      }
      const outcome = await c.outcome;
      await settleWithin(workers.map((w) => w.outcome), 10_000);
      const rejected = c.observer.of('peerRejected').map((e) => e.reason);
      if (!outcome.ok) return { state: c.run.trainer.getState(), logs: c.logs, rejected, error: outcome.error };
      return { state: c.run.trainer.getState(), logs: c.logs, rejected };
    } finally {
      await c.close();
    }
  });
}

function assertSameBits(a: TrainerState, b: TrainerState, what: string): void {
  assert.equal(a.step, b.step, `${what}: step`);
  for (const k of TRAINER_STATE_ARRAYS) {
    const x = a[k];
    const y = b[k];
    assert.equal(x.length, y.length, `${what}: ${k} length`);
    assert.ok(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)), `${what}: ${k} differs`);
  }
}

test('DCGAN, 3 workers, 20 steps: sharded (2 and 3 owners) is bit-identical to star, weights, BN statistics and Adam', async () => {
  const config: Partial<RunConfig> = { dataset: 'mnist', model: 'dcgan', width: 0.25, batchSize: 12, steps: 20 };
  const star = await train({ transport: 'ipc', workers: 3, config: { ...config, reduction: 'star' } });
  assert.equal(star.error, undefined, star.logs.slice(-5).join('\n'));
  for (const shards of [2, 3]) {
    const sharded = await train({ transport: 'ipc', workers: 3, config: { ...config, reduction: 'sharded', reduceShards: shards } });
    assert.equal(sharded.error, undefined, sharded.logs.slice(-5).join('\n'));
    assert.ok(sharded.logs.some((l) => l.startsWith(`sharded reduction: ${shards} shard owners`)), sharded.logs.join('\n'));
    assertSameBits(sharded.state, star.state, `${shards} owners vs star`);
  }
});

for (const transport of TRANSPORTS) {
  test(`MLP over ${transport}: sharded equals star bit for bit; a stranger pushing to an owner is dropped`, async () => {
    const config: Partial<RunConfig> = { steps: 12, batchSize: 30 };
    const star = await train({ transport, workers: 2, config: { ...config, reduction: 'star' } });
    assert.equal(star.error, undefined);
    let strangerSent = 0;
    const sharded = await train({
      transport,
      workers: 2,
      config: { ...config, reduction: 'sharded', reduceShards: 2 },
      during: async (eps) => {
        // A peer without a member's routing id pushes a part for rank 0 to every owner.
        for (const [k, ep] of eps.entries()) {
          const d = new Dealer({ linger: 0 });
          d.connect(ep);
          await d.send(encode({ t: MsgType.ShardPush, step: 0, phase: 'd', rank: 0, shard: k, frames: { grad: new Float32Array(16).fill(1e6) } }));
          strangerSent++;
          setTimeout(() => d.close(), 500);
        }
      },
    });
    assert.equal(sharded.error, undefined, sharded.logs.slice(-5).join('\n'));
    assert.equal(strangerSent, 2);
    assertSameBits(sharded.state, star.state, `sharded over ${transport}`);
    assert.ok(sharded.rejected.some((r) => /not a member/.test(r)), `the stranger's parts are counted as rejected: ${sharded.rejected.join('; ')}`);
  });
}

test('a non-finite part is named by rank through the owners, and nothing of it is applied', async () => {
  const poison = (t: GanTrainer): GanTrainer =>
    new Proxy(t, {
      get(target, prop, recv) {
        if (prop === 'computeGradients') {
          return async (phase: string, input: Parameters<GanTrainer['computeGradients']>[1]) => {
            const r = await target.computeGradients(phase, input);
            if (input.step === 2 && phase === 'g') r.gradients[r.gradients.length - 1] = NaN;
            return r;
          };
        }
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const r = await train({ transport: 'ipc', workers: 2, config: { steps: 6, batchSize: 20, reduction: 'sharded', reduceShards: 2 }, wrap: (rank) => (rank === 1 ? poison : undefined) });
  assert.ok(r.error, 'the run fails under --on-bad-gradient fail');
  const msg = String((r.error as Error).message);
  assert.match(msg, /rank 1/);
  assert.match(msg, /NaN/);
  assert.match(msg, /step 2/);
});
