/**
 * The raw TCP floor of a reduction's traffic between simulated hosts
 * (bench/reduce-hosts.ts): the same bytes in the same pattern as star or
 * sharded, over plain persistent TCP connections, with no protocol, no
 * summation and no coordinator. One process per host:
 *
 *   node dist/bench/netns-pattern-child.js '<PatternConfig as JSON>'
 *
 * Hosts are numbered 0..N: host 0 is the coordinator's, hosts 1..N the
 * workers'. Phases alternate D and G (byte sizes `bytes[phase % 2]` per
 * worker), back to back, as workers that do not compute would run them.
 *
 *  - star: each worker sends its S bytes to host 0; host 0, once it has
 *    every worker's, sends S back to each; a worker's phase ends when it has
 *    them, and its next phase starts at once.
 *  - sharded: each worker host sends shard k (S/N bytes) to worker host k
 *    (its own shard stays local); a host that has every part of its shard
 *    sends the averaged shard (S/N bytes) to every other worker host; a
 *    worker's phase ends when it holds every averaged shard.
 *
 * Every connection is a byte stream and every message of a stage has a known
 * size, so progress is counted in bytes received per peer. Prints one JSON
 * line: {host, phases: [{start, end}]} (ms, CLOCK_MONOTONIC; workers only).
 */
import net from 'node:net';

export interface PatternConfig {
  pattern: 'star' | 'sharded';
  host: number;
  /** Addresses of hosts 0..N. */
  addresses: string[];
  port: number;
  /** Bytes of one worker's D and G gradient. */
  bytes: [number, number];
  phases: number;
  /** Start of phase 0 (ms, CLOCK_MONOTONIC), so that every host starts together. */
  startAt: number;
  timeoutMs: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as PatternConfig;
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const N = cfg.addresses.length - 1;
const me = cfg.host;

/** Bytes worker shard k of a gradient of `total` bytes holds (contiguous split, as shardBounds splits floats). */
function shardBytes(total: number, k: number): number {
  const floats = total / 4;
  const lo = Math.floor((k * floats) / N);
  const hi = Math.floor(((k + 1) * floats) / N);
  return (hi - lo) * 4;
}

/** Per peer: bytes expected so far (cumulative), bytes received so far, and waiters for cumulative targets. */
const expected = new Map<number, number>();
const received = new Map<number, number>();
const waiters: Array<{ peer: number; target: number; resolve: () => void }> = [];
function onBytes(peer: number, n: number): void {
  const total = (received.get(peer) ?? 0) + n;
  received.set(peer, total);
  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i]!;
    if (w.peer === peer && total >= w.target) {
      waiters.splice(i, 1);
      w.resolve();
    }
  }
}
function until(peer: number, target: number): Promise<void> {
  if ((received.get(peer) ?? 0) >= target) return Promise.resolve();
  return new Promise((resolve) => waiters.push({ peer, target, resolve }));
}

async function main(): Promise<void> {
  const workers = Array.from({ length: N }, (_, i) => i + 1);
  // Who talks to whom: star: workers ↔ host 0; sharded: workers ↔ every other worker.
  const peers = cfg.pattern === 'star' ? (me === 0 ? workers : [0]) : workers.filter((w) => w !== me);
  // Every host listens; the lower-numbered side of a pair connects, and the first 4 bytes say who it is.
  const fail = (e: Error): void => {
    process.stderr.write(`pattern child ${me}: ${e.message}\n`);
    process.exit(1);
  };
  const server = net.createServer((s) => {
    s.on('error', fail);
    let who: number | undefined;
    let head = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      if (who === undefined) {
        head = Buffer.concat([head, d]);
        if (head.length < 4) return;
        who = head.readUInt32LE(0);
        sockets.set(who, s);
        connected();
        if (head.length > 4) onBytes(who, head.length - 4);
        return;
      }
      onBytes(who, d.length);
    });
  });
  const sockets = new Map<number, net.Socket>();
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((r) => (resolveAll = r));
  const connected = (): void => {
    if (peers.every((p) => sockets.has(p))) resolveAll();
  };
  await new Promise<void>((r) => server.listen(cfg.port, cfg.addresses[me], () => r()));
  for (const p of peers) {
    if (p < me) continue;
    // The peer may not listen yet: retry.
    for (;;) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const c = net.connect(cfg.port, cfg.addresses[p]!, () => resolve(c));
          c.once('error', reject);
        });
        s.removeAllListeners('error');
        s.on('error', fail);
        const id = Buffer.alloc(4);
        id.writeUInt32LE(me);
        s.write(id);
        s.on('data', (d: Buffer) => onBytes(p, d.length));
        sockets.set(p, s);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  connected();
  await all;
  const send = (peer: number, n: number): void => {
    sockets.get(peer)!.write(Buffer.alloc(n, 0x5a));
  };
  progress = 'connected';
  await new Promise((r) => setTimeout(r, Math.max(0, cfg.startAt - now())));
  const expect = (peer: number, n: number): Promise<void> => {
    const t = (expected.get(peer) ?? 0) + n;
    expected.set(peer, t);
    return until(peer, t);
  };
  const phases: Array<{ start: number; end: number }> = [];
  for (let p = 0; p < cfg.phases; p++) {
    const S = cfg.bytes[p % 2]!;
    const start = now();
    progress = `phase ${p}`;
    if (cfg.pattern === 'star') {
      if (me === 0) {
        await Promise.all(workers.map((w) => expect(w, S)));
        for (const w of workers) send(w, S);
      } else {
        send(0, S);
        await expect(0, S);
      }
    } else {
      const k = me - 1; // this host's shard
      for (const w of peers) send(w, shardBytes(S, w - 1));
      await Promise.all(peers.map((w) => expect(w, shardBytes(S, k))));
      for (const w of peers) send(w, shardBytes(S, k));
      await Promise.all(peers.map((w) => expect(w, shardBytes(S, w - 1))));
    }
    if (me !== 0) phases.push({ start, end: now() });
  }
  process.stdout.write(JSON.stringify({ host: me, phases }) + '\n');
  // Half-close every connection once its last bytes have left (end() flushes Node's buffer first), and
  // wait for the peer's end too: a host that exits early would drop what is still queued for the others.
  await Promise.all(
    [...sockets.values()].map(
      (s) =>
        new Promise<void>((resolve) => {
          // A peer that finished first has closed the connection already (no 'close' to come).
          if (s.closed || s.destroyed) return resolve();
          s.once('close', () => resolve());
          s.end();
        }),
    ),
  );
  server.close();
}

let progress = 'connecting';
const timer = setTimeout(() => {
  process.stderr.write(`pattern child ${me}: not done within ${cfg.timeoutMs} ms (${progress}; expected ${JSON.stringify([...expected])}, received ${JSON.stringify([...received])})\n`);
  process.exit(1);
}, cfg.timeoutMs);
main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`pattern child ${me}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
