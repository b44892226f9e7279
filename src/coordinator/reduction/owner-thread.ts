/**
 * A shard owner as a thread of the coordinator (worker_threads): binds its
 * own ZeroMQ ROUTER, receives the ShardPush parts of its slice straight from
 * the workers, sums them (owner.ts), and sends the averaged slice back to
 * every worker (ShardAverage) when the coordinator says so. The coordinator
 * talks to it over the thread's message port (OwnerOrder in, OwnerReport out);
 * it never sees the gradient bytes.
 *
 * Only members may push: each worker's DEALER carries the routing id the
 * coordinator gave its rank in Welcome, and a part from any other identity,
 * or for another rank, is dropped and counted. A frame larger than a shard
 * is refused by libzmq before it is allocated (ZMQ_MAXMSGSIZE).
 *
 * The thread closes its socket only when told to (`close`): terminating a
 * thread with an open zeromq socket aborts the process.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Router } from 'zeromq';
import { EMPTY_F32, MsgType, decode, encode, maxInboundFrameBytes } from '../../shared/protocol.js';
import { ShardOwner, type OwnerConfig, type ShardState } from './owner.js';
import type { Network } from '../../shared/gan/phases.js';

export interface OwnerThreadData {
  config: OwnerConfig;
  /** Where to bind: ipc://PATH or tcp://HOST:0 (any free port). */
  bind: string;
  /** CURVE server settings when security is on (z85 keys; authorised client keys). */
  curve?: { publicKey: string; secretKey: string; authorized: string[] };
}

/** The coordinator's orders to an owner thread. */
export type OwnerOrder =
  | { op: 'state'; state: ShardState }
  | { op: 'members'; routingIds: string[] }
  | { op: 'reduce'; id: number; step: number; phase: string; accumulate: boolean }
  | { op: 'publish'; step: number; network: Network }
  | { op: 'discard' }
  | { op: 'commit'; step: number; order: Array<{ network: Network; skip: boolean }> }
  | { op: 'gather'; id: number }
  | { op: 'close' };

/** What an owner thread tells the coordinator. */
export type OwnerReport =
  | { t: 'bound'; endpoint: string }
  | { t: 'part'; step: number; phase: string; rank: number; sumSq: number; problem?: string }
  | { t: 'reduced'; id: number; problem?: string }
  | { t: 'state'; id: number; state: ShardState }
  | { t: 'dropped'; reason: string }
  | { t: 'unreachable'; rank: number; reason: string }
  | { t: 'failed'; message: string }
  | { t: 'closed' };

const port = parentPort;
if (!port) throw new Error('owner-thread.ts runs as a worker thread only');
const data = workerData as OwnerThreadData;
const report = (r: OwnerReport, transfer?: ArrayBuffer[]): void => port.postMessage(r, transfer);

const owner = new ShardOwner(data.config);
const router = new Router();
/** Routing id (hex) → rank, from the coordinator. */
let ranks = new Map<string, number>();
let byRank: Buffer[] = [];
let closed = false;

async function main(): Promise<void> {
  router.mandatory = true;
  router.sendTimeout = 0;
  router.linger = 1000;
  router.receiveHighWaterMark = 16;
  router.maxMessageSize = maxInboundFrameBytes(Math.max(owner.length('d'), owner.length('g')));
  if (data.curve) {
    const { applyServerCurve, startZapHandler } = await import('../../cli/transport/curve.js');
    await startZapHandler({ authorized: new Set(data.curve.authorized), onReject: (reason, address) => report({ t: 'dropped', reason: `CURVE: ${reason} (${address})` }) });
    applyServerCurve(router, { publicKey: data.curve.publicKey, secretKey: data.curve.secretKey });
  }
  await router.bind(data.bind.replace(/^(tcp:\/\/[^:]+):0$/, '$1:*'));
  report({ t: 'bound', endpoint: router.lastEndpoint ?? data.bind });
  void receive();
}

async function receive(): Promise<void> {
  while (!closed) {
    let frames: Buffer[];
    try {
      frames = await router.receive();
    } catch (e) {
      if (!closed) report({ t: 'failed', message: `owner ${data.config.shard}'s socket failed: ${String(e)}` });
      return;
    }
    const [identity, ...rest] = frames;
    if (!identity) continue;
    const rank = ranks.get(identity.toString('hex'));
    if (rank === undefined) {
      report({ t: 'dropped', reason: `a part from a peer that is not a member (routing id ${identity.toString('hex').slice(0, 8)})` });
      continue;
    }
    let msg;
    try {
      msg = decode(rest);
    } catch (e) {
      report({ t: 'dropped', reason: `malformed message from rank ${rank}: ${e instanceof Error ? e.message : String(e)}` });
      continue;
    }
    if (msg.t !== MsgType.ShardPush || msg.rank !== rank || msg.shard !== data.config.shard) {
      report({ t: 'dropped', reason: `unexpected ${MsgType[msg.t]} from rank ${rank}` });
      continue;
    }
    const r = owner.add(msg.step, msg.phase, rank, msg.frames.grad);
    if (r) report({ t: 'part', ...r });
  }
}

async function publish(step: number, network: Network): Promise<void> {
  const grad = owner.publish(network);
  const frames = encode({ t: MsgType.ShardAverage, step, network, shard: data.config.shard, frames: { grad: grad.length ? grad : EMPTY_F32 } });
  for (let r = 0; r < byRank.length; r++) {
    try {
      await router.send([byRank[r]!, ...frames]);
    } catch (e) {
      report({ t: 'unreachable', rank: r, reason: e instanceof Error ? e.message : String(e) });
    }
  }
}

port.on('message', (o: OwnerOrder) => {
  try {
    switch (o.op) {
      case 'state':
        owner.setState(o.state);
        return;
      case 'members':
        ranks = new Map(o.routingIds.map((id, r) => [Buffer.from(id).toString('hex'), r]));
        byRank = o.routingIds.map((id) => Buffer.from(id));
        return;
      case 'reduce': {
        const problem = owner.reduce(o.step, o.phase, o.accumulate);
        report({ t: 'reduced', id: o.id, ...(problem === undefined ? {} : { problem }) });
        return;
      }
      case 'publish':
        publish(o.step, o.network).catch((e: unknown) => report({ t: 'failed', message: String(e) }));
        return;
      case 'discard':
        owner.discard();
        return;
      case 'commit':
        owner.commit(o.step, o.order);
        return;
      case 'gather': {
        const state = owner.state();
        report({ t: 'state', id: o.id, state }, [state.dWeights, state.dAdamM, state.dAdamV, state.gWeights, state.gAdamM, state.gAdamV].map((a) => a.buffer as ArrayBuffer));
        return;
      }
      case 'close':
        closed = true;
        router.close();
        report({ t: 'closed' });
        port.close();
        return;
    }
  } catch (e) {
    report({ t: 'failed', message: `owner ${data.config.shard}: ${e instanceof Error ? e.message : String(e)}` });
  }
});

main().catch((e: unknown) => report({ t: 'failed', message: `owner ${data.config.shard} could not start: ${e instanceof Error ? e.message : String(e)}` }));
