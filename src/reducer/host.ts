/**
 * A shard owner's I/O, the same whether it runs as a thread of the
 * coordinator (thread.ts) or as a `distgan reducer` process on a worker's
 * host (process.ts): it binds a ZeroMQ ROUTER for the workers, receives the
 * ShardPush parts of its slice, feeds them to the owner (owner.ts), carries
 * out the coordinator's orders (protocol.ts OwnerInit … OwnerClose) and
 * reports back (OwnerHello, OwnerPart, OwnerReduced, OwnerState, OwnerNote)
 * through `report`, which is the thread's port or the process's DEALER.
 *
 * Only members may push: each worker's DEALER carries the routing id the
 * coordinator gave its rank (OwnerMembers), and a part from any other
 * identity, or for another rank or shard, is dropped and noted. The
 * workers' socket is bound only once OwnerInit has said how large a shard
 * is, so that libzmq refuses any larger frame before allocating it
 * (ZMQ_MAXMSGSIZE); OwnerBound then tells the coordinator where it is.
 */
import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { Router } from 'zeromq';
import { describeError } from '../shared/errors.js';
import type { Network } from '../shared/gan/phases.js';
import { EMPTY_F32, MsgType, PROTOCOL_VERSION, decode, encode, maxInboundFrameBytes, type Message, type OwnerOrderMsg, type OwnerReportMsg } from '../shared/protocol.js';
import { ShardOwner } from './owner.js';

export interface OwnerHostOptions {
  /** Where to bind for the workers: ipc://PATH or tcp://HOST:0 (any free port). */
  bind: string;
  /** Sends one report to the coordinator. */
  report: (msg: OwnerReportMsg) => Promise<void> | void;
  version: string;
  /** Applies CURVE (server side) before bind, when security is on. */
  configureSocket?: (router: Router) => Promise<void>;
}

/** Parses OwnerInit.phases (`name:network,...`). */
export function parsePhases(text: string): Array<{ name: string; network: Network }> {
  return text.split(',').map((entry) => {
    const m = /^([a-z][a-z0-9-]{0,31}):(d|g)$/.exec(entry);
    if (!m) throw new Error(`OwnerInit: phase entry ${JSON.stringify(entry)} is not name:d or name:g`);
    return { name: m[1]!, network: m[2] as Network };
  });
}

/** Parses OwnerCommit.order (`d,g`, `d,-g`, …; may be empty). */
export function parseOrder(text: string): Array<{ network: Network; skip: boolean }> {
  if (text === '') return [];
  return text.split(',').map((entry) => {
    const m = /^(-?)(d|g)$/.exec(entry);
    if (!m) throw new Error(`OwnerCommit: order entry ${JSON.stringify(entry)} is not d, g, -d or -g`);
    return { network: m[2] as Network, skip: m[1] === '-' };
  });
}

export class OwnerHost {
  private readonly router = new Router();
  private owner: ShardOwner | undefined;
  private ranks = new Map<string, number>();
  private byRank: Buffer[] = [];
  private closed = false;
  endpoint = '';

  constructor(private readonly opts: OwnerHostOptions) {}

  /** Says hello; the workers' socket is bound at OwnerInit. */
  async start(): Promise<void> {
    await this.opts.report({ t: MsgType.OwnerHello, protocol: PROTOCOL_VERSION, version: this.opts.version, host: hostname(), pid: process.pid });
  }

  private async bind(largestShard: number): Promise<string> {
    const r = this.router;
    r.mandatory = true;
    r.sendTimeout = 0;
    r.linger = 1000;
    r.receiveHighWaterMark = 16;
    r.maxMessageSize = maxInboundFrameBytes(largestShard);
    await this.opts.configureSocket?.(r);
    await r.bind(this.opts.bind.replace(/^(tcp:\/\/[^:]+):0$/, '$1:*'));
    this.endpoint = r.lastEndpoint ?? this.opts.bind;
    void this.receive();
    return this.endpoint;
  }

  private note(kind: 'dropped' | 'unreachable' | 'failed', message: string, rank = -1): void {
    void Promise.resolve(this.opts.report({ t: MsgType.OwnerNote, kind, rank, message })).catch(() => {});
  }

  private async receive(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.router.receive();
      } catch (e) {
        if (!this.closed) this.note('failed', `the shard owner's socket failed: ${describeError(e)}`);
        return;
      }
      const [identity, ...rest] = frames;
      if (!identity) continue;
      const rank = this.ranks.get(identity.toString('hex'));
      if (rank === undefined || !this.owner) {
        this.note('dropped', `a message from a peer that is not a member (routing id ${identity.toString('hex').slice(0, 8)})`);
        continue;
      }
      let msg: Message;
      try {
        msg = decode(rest);
      } catch (e) {
        this.note('dropped', `malformed message from rank ${rank}: ${describeError(e)}`);
        continue;
      }
      if (msg.t !== MsgType.ShardPush || msg.rank !== rank || msg.shard !== this.owner.config.shard) {
        this.note('dropped', `unexpected ${MsgType[msg.t]} from rank ${rank}`);
        continue;
      }
      const r = this.owner.add(msg.step, msg.phase, rank, msg.frames.grad);
      if (r) await this.opts.report({ t: MsgType.OwnerPart, step: r.step, phase: r.phase, rank: r.rank, sumSq: r.sumSq, problem: r.problem ?? '' });
    }
  }

  private async publish(step: number, network: Network): Promise<void> {
    const owner = this.owner!;
    const grad = owner.publish(network);
    const frames = encode({ t: MsgType.ShardAverage, step, network, shard: owner.config.shard, frames: { grad: grad.length ? grad : EMPTY_F32 } });
    for (let r = 0; r < this.byRank.length; r++) {
      try {
        await this.router.send([this.byRank[r]!, ...frames]);
      } catch (e) {
        this.note('unreachable', describeError(e), r);
      }
    }
  }

  /** Carries out one order. Returns false once told to close. Throws on an order it cannot carry out (the caller reports it). */
  async order(o: OwnerOrderMsg): Promise<boolean> {
    if (o.t !== MsgType.OwnerInit && o.t !== MsgType.OwnerClose && !this.owner) throw new Error(`${MsgType[o.t]} before OwnerInit`);
    switch (o.t) {
      case MsgType.OwnerInit: {
        if (this.owner) throw new Error('a second OwnerInit');
        const owner = new ShardOwner({
          shard: o.shard,
          shards: o.shards,
          worldSize: o.worldSize,
          phases: parsePhases(o.phases),
          lengths: { d: o.dLength, g: o.gLength },
          hyper: { lr: o.lr, beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon },
        });
        owner.setState({ step: o.step, ...o.frames });
        this.owner = owner;
        const endpoint = await this.bind(Math.max(owner.length('d'), owner.length('g')));
        await this.opts.report({ t: MsgType.OwnerBound, endpoint });
        return true;
      }
      case MsgType.OwnerMembers: {
        const ids = o.routingIds.split(' ').filter((x) => x !== '');
        this.ranks = new Map(ids.map((id, r) => [Buffer.from(id).toString('hex'), r]));
        this.byRank = ids.map((id) => Buffer.from(id));
        // The coordinator lets the workers push only once every owner knows them.
        await this.opts.report({ t: MsgType.OwnerAck, id: o.id });
        return true;
      }
      case MsgType.OwnerReduce: {
        const problem = this.owner!.reduce(o.step, o.phase, o.accumulate);
        await this.opts.report({ t: MsgType.OwnerReduced, id: o.id, problem: problem ?? '' });
        return true;
      }
      case MsgType.OwnerPublish:
        await this.publish(o.step, o.network);
        await this.opts.report({ t: MsgType.OwnerAck, id: o.id });
        return true;
      case MsgType.OwnerDiscard:
        this.owner!.discard();
        return true;
      case MsgType.OwnerCommit:
        this.owner!.commit(o.step, parseOrder(o.order));
        return true;
      case MsgType.OwnerGather: {
        const s = this.owner!.state();
        await this.opts.report({ t: MsgType.OwnerState, id: o.id, step: s.step, frames: { dWeights: s.dWeights, dAdamM: s.dAdamM, dAdamV: s.dAdamV, gWeights: s.gWeights, gAdamM: s.gAdamM, gAdamV: s.gAdamV } });
        return true;
      }
      case MsgType.OwnerClose:
        this.close();
        return false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.router.close();
    // libzmq leaves an ipc socket file behind; an owner thread's has a generated name, so they would pile up.
    if (this.endpoint.startsWith('ipc://')) rmSync(this.endpoint.slice('ipc://'.length), { force: true });
  }
}
