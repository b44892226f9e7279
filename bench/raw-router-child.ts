/**
 * The coordinator's side of the raw ZeroMQ floor of `distgan bench --suite
 * reduce` (bench/reduce.ts): K bare ROUTER sockets, each in its own thread
 * (as the sharded reduction's shard owners are; K = 1 stands for the star
 * coordinator), with no protocol, no summation and no Adam.
 *
 *   node dist/bench/raw-router-child.js '{"endpoints":[…],"worldSize":N,"dLength":…,"gLength":…,"phases":P}'
 *
 * Per phase (D, G, D, G, …) router k waits for shard k of every peer's
 * gradient (bench/sim-worker-child.ts, mode raw), then sends shard k of the
 * same size back to every peer: one buffer, zero-copy, as the owners send
 * one average. After the last phase every peer sends "bye" to every router.
 * Prints "ready" once every router is bound, and one JSON line when all
 * phases are done (or {error}, exit 1).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Router } from 'zeromq';
import { shardBounds } from '../src/shared/reduction/shards.js';

interface RouterConfig {
  endpoints: string[];
  worldSize: number;
  dLength: number;
  gLength: number;
  phases: number;
  timeoutMs?: number;
}

async function routerThread(cfg: RouterConfig, k: number): Promise<void> {
  const K = cfg.endpoints.length;
  const router = new Router({ linger: 500, receiveTimeout: cfg.timeoutMs ?? 600_000 });
  await router.bind(cfg.endpoints[k]!);
  parentPort!.postMessage('bound');
  const bounds = { d: shardBounds(cfg.dLength, K)[k]!, g: shardBounds(cfg.gLength, K)[k]! };
  const down = { d: Buffer.alloc((bounds.d[1] - bounds.d[0]) * 4, 1), g: Buffer.alloc((bounds.g[1] - bounds.g[0]) * 4, 2) };
  for (let i = 0; i < cfg.phases; i++) {
    const network = i % 2 === 0 ? 'd' : 'g';
    const ids: Buffer[] = [];
    while (ids.length < cfg.worldSize) {
      const [id, head, payload] = await router.receive();
      if (head?.toString() !== `${i}` || payload?.byteLength !== down[network].byteLength) {
        throw new Error(`raw router ${k}: phase ${head?.toString()} with ${payload?.byteLength} bytes, expected phase ${i} with ${down[network].byteLength}`);
      }
      ids.push(id!);
    }
    const head = Buffer.from(`${i}`);
    for (const id of ids) await router.send([id, head, down[network]]);
  }
  // Every peer says when it has the last phase: only then are the zero-copy sends done with
  // (a thread that ends while libzmq still holds its buffers aborts the process).
  for (let n = 0; n < cfg.worldSize; n++) {
    const [, head] = await router.receive();
    if (head?.toString() !== 'bye') throw new Error(`raw router ${k}: expected bye, got ${head?.toString()}`);
  }
  router.close();
}

if (isMainThread) {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as RouterConfig;
  const threads = cfg.endpoints.map((_, k) => new Worker(new URL(import.meta.url), { workerData: { cfg, k } }));
  let bound = 0;
  // Each thread closes its socket and then ends by itself; the process exits only after every
  // thread has (exiting the process under a thread's live ZeroMQ context aborts it).
  const done = threads.map(
    (t, k) =>
      new Promise<void>((resolve, reject) => {
        let finished = false;
        t.on('message', (m: string) => {
          if (m === 'bound' && ++bound === threads.length) process.stdout.write('ready\n');
          if (m === 'done') finished = true;
        });
        t.on('error', reject);
        t.on('exit', (code) => (code === 0 && finished ? resolve() : reject(new Error(`raw router thread ${k} exited ${code} before its last phase`))));
      }),
  );
  Promise.all(done).then(
    () => {
      process.stdout.write(JSON.stringify({ ok: true, pid: process.pid }) + '\n');
      process.exit(0);
    },
    (e: unknown) => {
      process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }) + '\n');
      process.exit(1);
    },
  );
} else {
  const { cfg, k } = workerData as { cfg: RouterConfig; k: number };
  routerThread(cfg, k).then(
    () => parentPort!.postMessage('done'),
    (e: unknown) => {
      throw e;
    },
  );
}
