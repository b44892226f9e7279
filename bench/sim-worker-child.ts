/**
 * Simulated workers for `distgan bench --suite reduce` (bench/reduce.ts): one
 * process hosting many peers that do no compute.
 *
 *   node dist/bench/sim-worker-child.js '<SimConfig as JSON>'
 *
 * mode "distgan": each peer speaks distgan's protocol (src/shared/protocol.ts)
 * to a real coordinator over its own DEALER: Hello with an explicit rank,
 * Ready echoing Welcome's fingerprints, then every PhaseStep is answered at
 * once with a fixed gradient of the right length. With a sharded reduction
 * the peer links to the shard owners with the worker's own ShardLink
 * (src/worker/shard-link.ts: one DEALER per owner, routing id from Welcome),
 * pushes its shards there and gathers the averaged shards before it goes on,
 * exactly as a worker does; with star the gradient travels in PhaseResult
 * and the average comes back in the next PhaseStep or Finish.
 *
 * The fixed gradients sum to exactly zero in rank order: even ranks send +x,
 * odd ranks −x (x a fixed pattern of multiples of 2^-14, pre-scaled by 1/N),
 * so every partial sum is x or 0 exactly (an odd world's last rank sends
 * zeros). The average is then exactly 0, Adam's update of a zero gradient
 * from zero moments is exactly 0, the replicas' weights never change, and
 * each peer's checksum (src/shared/gan/trainer.ts checksum(): sha256 over G
 * weights, D weights and BN statistics of the Init state) matches the
 * coordinator's mirror at Finish: the run ends cleanly and verified. The
 * coordinator still inspects, sums, averages, runs its mirror's Adam and
 * sends every byte; float32 additions cost the same whatever the values.
 *
 * mode "raw": the same peers and bytes with bare sockets (the raw ZeroMQ
 * floor): per phase each peer sends shard k of a gradient-sized buffer to
 * router k (bench/raw-router-child.ts) and waits for shard k back from every
 * router; K = 1 is the star's traffic, K > 1 the sharded one's.
 *
 * Times are CLOCK_MONOTONIC (process.hrtime), shared by every process on the
 * machine, in ms. Per peer and phase: `start` when the phase's PhaseStep (raw:
 * the previous phase's last shard) arrived, `end` when the peer held the
 * phase's complete averaged update (the next PhaseStep or Finish, and with
 * sharded every ShardAverage of it). At each phase start of the peer with
 * the lowest rank here, and at the end, this process records its own CPU
 * time and that of `cpuPids` (the coordinator's or the raw routers' threads,
 * bench/proc-cpu.ts).
 *
 * Prints one JSON line (SimReport) on stdout at the end; on failure {error}
 * and exit 1. In mode distgan the same report (without `stop`) is printed
 * once every peer here has answered Finish, so that the suite need not wait
 * for the coordinator's final sample grid, checkpoint and export.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { Dealer } from 'zeromq';
import { EMPTY_F32, MsgType, PROTOCOL_VERSION, decode, encode, type Message } from '../src/shared/protocol.js';
import { shardBounds } from '../src/shared/reduction/shards.js';
import { phaseTable, type Network } from '../src/shared/gan/phases.js';
import { VERSION } from '../src/shared/version.js';
import { ShardLink } from '../src/worker/shard-link.js';
import { peakRssMiB, sampleThreadCpu, type ThreadCpu } from './proc-cpu.js';

export interface SimConfig {
  mode: 'distgan' | 'raw';
  /** Ranks this process hosts. */
  ranks: number[];
  worldSize: number;
  /** distgan: the coordinator's endpoint. */
  connect?: string;
  /** raw: the routers' endpoints (K). */
  endpoints?: string[];
  /** raw: gradient lengths of D and G (floats) and the number of phases (D, G, D, G, …). */
  dLength?: number;
  gLength?: number;
  phases?: number;
  /** Processes whose threads' CPU the lowest rank here samples at phase boundaries. */
  cpuPids?: number[];
  /** Longest wait for any message, ms. */
  timeoutMs: number;
}

export interface PhaseRecord {
  rank: number;
  step: number;
  phase: string;
  /** ms, CLOCK_MONOTONIC. */
  start: number;
  end?: number;
}

export interface CpuSample {
  /** The phase that starts here ('end' after the last). */
  step: number;
  phase: string;
  at: number;
  cpu: Record<string, ThreadCpu | undefined>;
  /** This process's own CPU (user + system), ms. */
  ownCpuMs: number;
  /** At 'end': peak RSS (VmHWM) of the sampled processes so far, MiB. */
  peakRssMiB?: Record<string, number | undefined>;
}

export interface SimReport {
  pid: number;
  ranks: number[];
  records: PhaseRecord[];
  samples: CpuSample[];
  /** How the coordinator ended the run (distgan mode). */
  stop?: { reason: string; failed: boolean };
  error?: string;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const ownCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const config = JSON.parse(process.argv[2] ?? '{}') as SimConfig;
const records: PhaseRecord[] = [];
const samples: CpuSample[] = [];
const sampler = Math.min(...config.ranks);

function sample(rank: number, step: number, phase: string, at: number): void {
  if (rank !== sampler) return;
  const pids = config.cpuPids ?? [];
  const cpu: Record<string, ThreadCpu | undefined> = {};
  for (const pid of pids) cpu[String(pid)] = sampleThreadCpu(pid);
  const s: CpuSample = { step, phase, at, cpu, ownCpuMs: ownCpuMs() };
  if (phase === 'end' && pids.length) s.peakRssMiB = Object.fromEntries(pids.map((p) => [String(p), peakRssMiB(p)]));
  samples.push(s);
}

/** The fixed gradients of this process, by network and sign, made once per length. */
const gradients = new Map<string, Float32Array>();
function fixedGradient(length: number, sign: 1 | -1 | 0): Float32Array {
  const key = `${length}:${sign}`;
  let g = gradients.get(key);
  if (!g) {
    g = new Float32Array(length);
    if (sign !== 0) {
      const scale = (sign * 2 ** -14) / config.worldSize;
      for (let i = 0; i < length; i++) g[i] = ((i % 251) - 125) * scale;
    }
    gradients.set(key, g);
  }
  return g;
}

/** +x for even ranks, −x for odd ones, zeros for an odd world's last rank: the rank-order sum is exactly 0. */
function signOf(rank: number, worldSize: number): 1 | -1 | 0 {
  if (worldSize % 2 === 1 && rank === worldSize - 1) return 0;
  return rank % 2 === 0 ? 1 : -1;
}

async function receive(d: Dealer, what: string): Promise<Buffer[]> {
  try {
    return await d.receive();
  } catch (e) {
    if ((e as { code?: string }).code === 'EAGAIN') throw new Error(`no ${what} within ${(config.timeoutMs / 1000).toFixed(0)} s`);
    throw e;
  }
}

/** The checksum of the Init state, computed once per process (every peer gets the same Init). */
let initChecksum: string | undefined;

function checksumOf(init: Extract<Message, { t: MsgType.Init }>): string {
  const h = createHash('sha256');
  for (const a of [init.frames.gWeights, init.frames.dWeights, init.frames.bnStats]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex').slice(0, 16);
}

const networkOf = new Map<string, Network>(phaseTable().map((p) => [p.name, p.network]));

async function distganPeer(rank: number): Promise<{ reason: string; failed: boolean }> {
  const dealer = new Dealer({ linger: 500, receiveTimeout: config.timeoutMs });
  dealer.connect(config.connect!);
  let link: ShardLink | undefined;
  try {
    await dealer.send(encode({ t: MsgType.Hello, protocol: PROTOCOL_VERSION, version: VERSION, host: hostname(), pid: process.pid, backend: 'sim', backendReason: 'bench --suite reduce: simulated worker, no compute', rank }));
    const welcome = decode(await receive(dealer, 'Welcome'));
    if (welcome.t !== MsgType.Welcome) throw new Error(`rank ${rank}: expected Welcome, got ${MsgType[welcome.t]}${welcome.t === MsgType.Refuse ? `: ${welcome.reason}` : ''}`);
    const worldSize = welcome.worldSize;
    await dealer.send(encode({ t: MsgType.Ready, rank, modelFingerprint: welcome.run.modelFingerprint, datasetFingerprint: welcome.run.datasetFingerprint, datasetCount: 0 }));
    let init = decode(await receive(dealer, 'Init'));
    while (init.t === MsgType.Welcome) init = decode(await receive(dealer, 'Init'));
    if (init.t === MsgType.Stop) return { reason: init.reason, failed: init.failed };
    if (init.t !== MsgType.Init) throw new Error(`rank ${rank}: expected Init, got ${MsgType[init.t]}`);
    const lengths = { d: init.frames.dWeights.length, g: init.frames.gWeights.length };
    if (initChecksum === undefined) initChecksum = checksumOf(init);
    const checksum = initChecksum;
    if (welcome.reduction.kind === 'sharded') link = await ShardLink.open(welcome.reduction, { coordinator: config.connect!, rank, lengths });
    const sign = signOf(rank, worldSize);
    let open: PhaseRecord | undefined;
    for (;;) {
      const msg = decode(await receive(dealer, 'the next PhaseStep'));
      const t = now();
      if (msg.t === MsgType.PhaseStep || msg.t === MsgType.Finish) {
        let have = t;
        if (msg.applyTo !== '' && link) {
          await link.gather(msg.step, msg.applyTo, config.timeoutMs);
          have = now();
        }
        if (open) open.end = have;
        if (msg.t === MsgType.Finish) {
          sample(rank, msg.step, 'end', t);
          await dealer.send(encode({ t: MsgType.Finished, step: msg.step, checksum }));
          open = undefined;
          finished();
          continue;
        }
        sample(rank, msg.step, msg.phase, t);
        open = { rank, step: msg.step, phase: msg.phase, start: t };
        records.push(open);
        const network = networkOf.get(msg.phase);
        if (!network) throw new Error(`rank ${rank}: phase ${msg.phase} is not in the phase table`);
        const grad = fixedGradient(lengths[network], sign);
        if (link) await link.push(msg.step, msg.phase, network, grad);
        const stats = network === 'd' ? { dLoss: Math.LN2, dAccuracyReal: 0.5, dAccuracyFake: 0.5 } : { gLoss: Math.LN2 };
        await dealer.send(
          encode({
            t: MsgType.PhaseResult,
            step: msg.step,
            phase: msg.phase,
            stats,
            computeSeconds: 0,
            dataSeconds: 0,
            applySeconds: 0,
            ...(msg.checksum ? { checksum } : {}),
            frames: { grad: link ? EMPTY_F32 : grad, aux: EMPTY_F32 },
          }),
        );
      } else if (msg.t === MsgType.Stop) {
        return { reason: msg.reason, failed: msg.failed };
      } else {
        throw new Error(`rank ${rank}: unexpected ${MsgType[msg.t]} during training`);
      }
    }
  } finally {
    link?.close();
    dealer.close();
  }
}

async function rawPeer(rank: number): Promise<void> {
  const endpoints = config.endpoints!;
  const K = endpoints.length;
  const lengths = { d: config.dLength!, g: config.gLength! };
  const dealers = endpoints.map((e) => {
    const d = new Dealer({ linger: 500, receiveTimeout: config.timeoutMs });
    d.connect(e);
    return d;
  });
  try {
    const sign = signOf(rank, config.worldSize);
    for (let i = 0; i < config.phases!; i++) {
      const network: Network = i % 2 === 0 ? 'd' : 'g';
      const step = Math.floor(i / 2);
      const t = now();
      sample(rank, step, network, t);
      const record: PhaseRecord = { rank, step, phase: network, start: t };
      records.push(record);
      const grad = fixedGradient(lengths[network], sign);
      const bounds = shardBounds(grad.length, K);
      const head = Buffer.from(`${i}`);
      await Promise.all(dealers.map((d, k) => d.send([head, Buffer.from(grad.buffer, bounds[k]![0] * 4, (bounds[k]![1] - bounds[k]![0]) * 4)])));
      await Promise.all(
        dealers.map(async (d, k) => {
          const [h, payload] = await receive(d, `raw shard ${k} of phase ${i}`);
          const want = (bounds[k]![1] - bounds[k]![0]) * 4;
          if (h?.toString() !== `${i}` || payload?.byteLength !== want) throw new Error(`rank ${rank}: raw router ${k} sent phase ${h?.toString()} with ${payload?.byteLength} bytes, expected phase ${i} with ${want}`);
        }),
      );
      record.end = now();
    }
    sample(rank, Math.floor(config.phases! / 2), 'end', now());
    await Promise.all(dealers.map((d) => d.send([Buffer.from('bye')])));
  } finally {
    for (const d of dealers) d.close();
  }
}

/**
 * Every peer here has answered Finish: the records are complete, so the
 * report is printed now (the suite may end the run here, once the
 * coordinator has checked the checksums), and again with `stop` at the end.
 */
let unfinished = config.ranks.length;
function finished(): void {
  if (--unfinished === 0) process.stdout.write(JSON.stringify({ pid: process.pid, ranks: config.ranks, records, samples } satisfies SimReport) + '\n');
}

async function main(): Promise<SimReport> {
  const report: SimReport = { pid: process.pid, ranks: config.ranks, records, samples };
  if (config.mode === 'raw') {
    await Promise.all(config.ranks.map((r) => rawPeer(r)));
  } else {
    const stops = await Promise.all(config.ranks.map((r) => distganPeer(r)));
    report.stop = stops.find((s) => s.failed) ?? stops[0]!;
  }
  return report;
}

main().then(
  (r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  },
  (e: unknown) => {
    process.stdout.write(JSON.stringify({ pid: process.pid, ranks: config.ranks, records, samples, error: e instanceof Error ? e.message : String(e) }) + '\n');
    process.exit(1);
  },
);
