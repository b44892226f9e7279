/**
 * A shard owner as its own process (`distgan reducer`), for runs across
 * hosts: BytePS places one summation server per worker host, so that the
 * shards' traffic is spread over every host's link instead of all going
 * through the coordinator's. It connects a DEALER to the coordinator (which
 * gives it its shard and the mirror's slice: OwnerInit), binds a ROUTER for
 * the workers (host.ts) and carries out the coordinator's orders until told
 * to close.
 *
 * It never outlives its run: a coordinator that says nothing for
 * `idleTimeoutMs` (from OwnerHello until OwnerInit, and between orders) is
 * taken as gone, and the reducer exits non-zero naming it.
 */
import { Dealer, type Router } from 'zeromq';
import { DeadlineError, ProtocolError, describeError } from '../shared/errors.js';
import { MsgType, OWNER_REPORT_TYPES, decode, encode, type Message, type OwnerOrderMsg } from '../shared/protocol.js';
import { OwnerHost } from './host.js';

export interface ReducerOptions {
  /** The coordinator's endpoint. */
  connect: string;
  /** Where to bind for the workers (tcp://ADDRESS:0 for any free port). */
  bind: string;
  version: string;
  /** Seconds of silence from the coordinator after which the reducer gives up. */
  idleTimeoutS: number;
  log: (line: string) => void;
  /** CURVE: client side towards the coordinator, server side towards the workers. */
  configureDealer?: (d: Dealer) => Promise<void>;
  configureRouter?: (r: Router) => Promise<void>;
}

const ORDER_TYPES: ReadonlySet<MsgType> = new Set([MsgType.OwnerInit, MsgType.OwnerMembers, MsgType.OwnerReduce, MsgType.OwnerPublish, MsgType.OwnerDiscard, MsgType.OwnerCommit, MsgType.OwnerGather, MsgType.OwnerClose]);

/** Runs until the coordinator says OwnerClose (resolves) or goes silent / fails (rejects). */
export async function runReducer(opts: ReducerOptions): Promise<string> {
  const dealer = new Dealer({ linger: 1000 });
  await opts.configureDealer?.(dealer);
  dealer.connect(opts.connect);
  const host = new OwnerHost({
    bind: opts.bind,
    version: opts.version,
    report: async (msg) => {
      if (!OWNER_REPORT_TYPES.has(msg.t)) throw new ProtocolError(`not a report: ${MsgType[msg.t]}`);
      await dealer.send(encode(msg));
    },
    ...(opts.configureRouter ? { configureSocket: opts.configureRouter } : {}),
  });
  try {
    await host.start();
    opts.log(`reducer waiting for the coordinator at ${opts.connect}`);
    dealer.receiveTimeout = Math.round(opts.idleTimeoutS * 1000);
    let initialised = false;
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await dealer.receive();
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') throw new DeadlineError(`the coordinator at ${opts.connect} said nothing for ${opts.idleTimeoutS} s; it is gone, or this reducer is not part of its run`);
        throw e;
      }
      let msg: Message;
      try {
        msg = decode(frames);
      } catch (e) {
        throw new ProtocolError(`malformed order from the coordinator: ${describeError(e)}`, { cause: e });
      }
      if (!ORDER_TYPES.has(msg.t)) throw new ProtocolError(`unexpected ${MsgType[msg.t]} from the coordinator`);
      const order = msg as OwnerOrderMsg;
      if (order.t === MsgType.OwnerInit && !initialised) {
        initialised = true;
      }
      try {
        if (order.t === MsgType.OwnerInit) {
          await host.order(order);
          opts.log(`reducer owns shard ${order.shard} of ${order.shards} (${order.worldSize} workers, from step ${order.step}); workers reach it at ${host.endpoint}`);
          continue;
        }
        if (!(await host.order(order))) return order.t === MsgType.OwnerClose ? order.reason : 'closed';
      } catch (e) {
        await dealer.send(encode({ t: MsgType.OwnerNote, kind: 'failed', rank: -1, message: describeError(e) })).catch(() => {});
        throw e;
      }
    }
  } finally {
    host.close();
    dealer.close();
  }
}
