/**
 * A worker's links to the shard owners of a sharded reduction
 * (coordinator/reduction/sharded.ts): one DEALER per owner, with the
 * routing id the coordinator gave this rank in Welcome (owners take parts
 * only from members). Shard k of each gradient goes to owner k (ShardPush);
 * the averaged shard k of each update comes back from it (ShardAverage) and
 * is put in place in one flat array before the update is applied.
 *
 * Every wait has a deadline, and a wrong answer (another shard, network or
 * length) is a protocol error naming the owner.
 */
import { Dealer } from 'zeromq';
import { DeadlineError, ProtocolError } from '../shared/errors.js';
import type { Network } from '../shared/gan/phases.js';
import { MsgType, decode, encode, type ReductionSpecWire } from '../shared/protocol.js';
import { shardBounds } from '../shared/reduction/shards.js';

/**
 * Where to reach an owner: a wildcard address (tcp://0.0.0.0:P, tcp://*:P)
 * is reached at the coordinator's host as this worker knows it (--connect).
 */
export function reachableEndpoint(owner: string, coordinator: string): string {
  const wild = /^tcp:\/\/(?:0\.0\.0\.0|\*|\[::\]):(\d+)$/.exec(owner);
  const host = /^tcp:\/\/([^:/]+|\[[^\]]+\]):\d+$/.exec(coordinator)?.[1];
  return wild && host ? `tcp://${host}:${wild[1]}` : owner;
}

export class ShardLink {
  private readonly dealers: Dealer[];
  readonly endpoints: string[];

  private constructor(
    spec: ReductionSpecWire,
    coordinator: string,
    private readonly rank: number,
    private readonly lengths: Readonly<Record<Network, number>>,
  ) {
    this.endpoints = spec.endpoints.split(' ').filter((e) => e !== '').map((e) => reachableEndpoint(e, coordinator));
    if (this.endpoints.length === 0) throw new ProtocolError('Welcome: a sharded reduction without shard owners');
    this.dealers = this.endpoints.map(() => new Dealer({ routingId: spec.routingId, linger: 500 }));
  }

  /** Connects to every owner (configure applies CURVE first, when security is on). */
  static async open(spec: ReductionSpecWire, opts: { coordinator: string; rank: number; lengths: Readonly<Record<Network, number>>; configure?: (d: Dealer) => Promise<void> }): Promise<ShardLink> {
    const link = new ShardLink(spec, opts.coordinator, opts.rank, opts.lengths);
    for (let k = 0; k < link.dealers.length; k++) {
      const d = link.dealers[k]!;
      await opts.configure?.(d);
      d.connect(link.endpoints[k]!);
    }
    return link;
  }

  get shards(): number {
    return this.dealers.length;
  }

  /** Sends shard k of `grad` (the gradient of `phase`, of `network`) to owner k, zero-copy. */
  async push(step: number, phase: string, network: Network, grad: Float32Array): Promise<void> {
    const bounds = shardBounds(this.lengths[network], this.dealers.length);
    if (grad.length !== this.lengths[network]) throw new ProtocolError(`a ${network.toUpperCase()} gradient of ${grad.length} floats, expected ${this.lengths[network]}`);
    await Promise.all(
      this.dealers.map((d, k) => {
        const [lo, hi] = bounds[k]!;
        return d.send(encode({ t: MsgType.ShardPush, step, phase, rank: this.rank, shard: k, frames: { grad: grad.subarray(lo, hi) } }));
      }),
    );
  }

  /** The averaged update of `network` that goes with the coordinator's message for `step`, from every owner. */
  async gather(step: number, network: Network, timeoutMs: number): Promise<Float32Array> {
    const out = new Float32Array(this.lengths[network]);
    const bounds = shardBounds(out.length, this.dealers.length);
    await Promise.all(
      this.dealers.map(async (d, k) => {
        d.receiveTimeout = Math.max(1, Math.round(timeoutMs));
        let frames: Buffer[];
        try {
          frames = await d.receive();
        } catch (e) {
          if ((e as { code?: string }).code === 'EAGAIN') throw new DeadlineError(`no averaged ${network.toUpperCase()} shard ${k} from the shard owner at ${this.endpoints[k]} within ${(timeoutMs / 1000).toFixed(0)} s`);
          throw e;
        }
        const msg = decode(frames);
        const [lo, hi] = bounds[k]!;
        if (msg.t !== MsgType.ShardAverage || msg.shard !== k || msg.network !== network || msg.step !== step || msg.frames.grad.length !== hi - lo) {
          throw new ProtocolError(`shard owner ${k} (${this.endpoints[k]}) sent ${MsgType[msg.t]} that is not ${network.toUpperCase()} shard ${k} of step ${step} (${hi - lo} floats)`);
        }
        out.set(msg.frames.grad, lo);
      }),
    );
    return out;
  }

  close(): void {
    for (const d of this.dealers) d.close();
  }
}
