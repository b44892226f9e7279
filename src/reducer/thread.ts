/**
 * A shard owner as a thread of the coordinator (worker_threads): its host
 * (host.ts) talks to the coordinator over the thread's message port, with
 * the same protocol messages a `distgan reducer` process sends over ZeroMQ
 * (encoded frames, posted as byte arrays).
 *
 * The thread closes its socket only when told to (OwnerClose): terminating
 * a thread with an open zeromq socket aborts the process.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { describeError } from '../shared/errors.js';
import { MsgType, decode, encode, type OwnerOrderMsg } from '../shared/protocol.js';
import { applyServerCurve } from '../transport/curve.js';
import { OwnerHost } from './host.js';

export interface OwnerThreadData {
  bind: string;
  version: string;
  /** CURVE server keys (the coordinator's), when security is on. */
  curve?: { publicKey: string; secretKey: string };
}

const port = parentPort;
if (!port) throw new Error('reducer/thread.ts runs as a worker thread only');
const data = workerData as OwnerThreadData;

const host = new OwnerHost({
  bind: data.bind,
  version: data.version,
  report: (msg) => port.postMessage(encode(msg)),
  // zeromq.js has one context per process: the coordinator's ZAP handler (started on its
  // main thread) authenticates this socket's peers too, against the same authorised keys.
  ...(data.curve ? { configureSocket: async (router) => applyServerCurve(router, data.curve!) } : {}),
});

let queue: Promise<unknown> = Promise.resolve();
port.on('message', (frames: Uint8Array[]) => {
  // One order at a time, in order: a publish must finish before the next order runs.
  queue = queue.then(async () => {
    try {
      const msg = decode(frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength))) as OwnerOrderMsg;
      if (!(await host.order(msg))) port.close();
    } catch (e) {
      port.postMessage(encode({ t: MsgType.OwnerNote, kind: 'failed', rank: -1, message: describeError(e) }));
    }
  });
});

host.start().catch((e: unknown) => port.postMessage(encode({ t: MsgType.OwnerNote, kind: 'failed', rank: -1, message: `could not bind ${data.bind}: ${describeError(e)}` })));
