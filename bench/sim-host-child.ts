/**
 * One simulated worker on one simulated host, for the simulated-hosts part
 * of `distgan bench --suite reduce` (bench/reduce-hosts.ts). Like
 * bench/sim-worker-child.ts (the in-machine part's simulated workers) it
 * speaks distgan's protocol to a real coordinator and sends fixed gradients,
 * but it hosts one rank (one per network namespace) and can stand for a GPU:
 * it sleeps `sleepMs` per phase where a worker would compute, and reports
 * that sleep as its computeSeconds, so the coordinator's own exchange figure
 * (step-summary.ts: phase wall time not explained by the slowest rank's
 * work) is comparable.
 *
 *   node dist/bench/sim-host-child.js '<SimHostConfig as JSON>'
 *
 * Per phase: the PhaseStep arrives (`start`); with a sharded reduction the
 * averaged shards of the previous phase are gathered from every owner (the
 * worker's own ShardLink, src/worker/shard-link.ts); the peer sleeps
 * (`computed` when done); it pushes its shards (sharded) or sends the whole
 * gradient in PhaseResult (star). `end` is when it held the phase's complete
 * averaged update (the next PhaseStep or Finish, and with sharded every
 * ShardAverage of it).
 *
 * The gradients sum to exactly zero in rank order (even ranks +x, odd ranks
 * −x, an odd world's last rank zeros), so the replicas never change and the
 * coordinator's checksum check at Finish passes against the Init state.
 *
 * With `sampleCpu`, the machine's CPU counters (/proc/stat, the same in every
 * namespace) are read at every phase start and at the end, so the bench can
 * tell how busy the machine's cores were over the timed phases.
 *
 * Prints one JSON line (SimHostReport) on stdout; on failure {error} and exit 1.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Dealer } from 'zeromq';
import { EMPTY_F32, MsgType, PROTOCOL_VERSION, decode, encode, type Message } from '../src/shared/protocol.js';
import { phaseTable, type Network } from '../src/shared/gan/phases.js';
import { VERSION } from '../src/shared/version.js';
import { ShardLink } from '../src/worker/shard-link.js';

export interface SimHostConfig {
  connect: string;
  rank: number;
  /** Simulated compute per phase, ms (0: answer at once). */
  sleepMs: number;
  /** Sample /proc/stat at phase boundaries. */
  sampleCpu?: boolean;
  /** With sampleCpu: also the CPU time of these processes (the run's others: coordinator, reducers, simulated workers). */
  cpuPids?: number[];
  /** Longest wait for any message, ms. */
  timeoutMs: number;
}

/** Machine-wide CPU counters (clock ticks): busy = all but idle and iowait; `own`: this run's processes (user + system). */
export interface CpuTicks {
  busy: number;
  total: number;
  own: number;
}

export interface HostPhaseRecord {
  step: number;
  phase: string;
  /** ms, CLOCK_MONOTONIC (shared by every namespace). */
  start: number;
  /** When the simulated compute ended. */
  computed?: number;
  /** How long the simulated compute (the sleep) took, ms; `computed − start` also holds, for sharded, the gather of the previous phase's average. */
  computeMs?: number;
  end?: number;
  cpu?: CpuTicks;
}

export interface SimHostReport {
  rank: number;
  pid: number;
  worldSize?: number;
  lengths?: { d: number; g: number };
  reduction?: string;
  records: HostPhaseRecord[];
  /** At Finish (sampleCpu). */
  endCpu?: CpuTicks & { at: number };
  stop?: { reason: string; failed: boolean };
  error?: string;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const config = JSON.parse(process.argv[2] ?? '{}') as SimHostConfig;
const report: SimHostReport = { rank: config.rank, pid: process.pid, records: [] };

function cpuTicks(): CpuTicks | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user nice system idle iowait irq softirq steal
    let own = 0;
    for (const pid of [process.pid, ...(config.cpuPids ?? [])]) own += processTicks(pid);
    return { busy: total - f[3]! - f[4]!, total, own };
  } catch {
    return undefined;
  }
}

/** utime + stime of a process (clock ticks, as /proc/stat's), 0 once it is gone. */
function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // fields 14 and 15 of proc(5), counted from field 3
  } catch {
    return 0;
  }
}

function fixedGradient(length: number, sign: 1 | -1 | 0, worldSize: number): Float32Array {
  const g = new Float32Array(length);
  if (sign !== 0) {
    const scale = (sign * 2 ** -14) / worldSize;
    for (let i = 0; i < length; i++) g[i] = ((i % 251) - 125) * scale;
  }
  return g;
}

function signOf(rank: number, worldSize: number): 1 | -1 | 0 {
  if (worldSize % 2 === 1 && rank === worldSize - 1) return 0;
  return rank % 2 === 0 ? 1 : -1;
}

async function receive(d: Dealer, what: string): Promise<Message> {
  try {
    return decode(await d.receive());
  } catch (e) {
    if ((e as { code?: string }).code === 'EAGAIN') throw new Error(`rank ${config.rank}: no ${what} within ${(config.timeoutMs / 1000).toFixed(0)} s`);
    throw e;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const networkOf = new Map<string, Network>(phaseTable().map((p) => [p.name, p.network]));

async function main(): Promise<void> {
  const rank = config.rank;
  const dealer = new Dealer({ linger: 500, receiveTimeout: config.timeoutMs });
  dealer.connect(config.connect);
  let link: ShardLink | undefined;
  try {
    await dealer.send(encode({ t: MsgType.Hello, protocol: PROTOCOL_VERSION, version: VERSION, host: hostname(), pid: process.pid, backend: 'sim', backendReason: 'bench --suite reduce (simulated hosts): simulated worker, sleeps instead of computing', rank }));
    const welcome = await receive(dealer, 'Welcome');
    if (welcome.t !== MsgType.Welcome) throw new Error(`rank ${rank}: expected Welcome, got ${MsgType[welcome.t]}${welcome.t === MsgType.Refuse ? `: ${welcome.reason}` : ''}`);
    const worldSize = welcome.worldSize;
    report.worldSize = worldSize;
    report.reduction = welcome.reduction.kind;
    await dealer.send(encode({ t: MsgType.Ready, rank, modelFingerprint: welcome.run.modelFingerprint, datasetFingerprint: welcome.run.datasetFingerprint, datasetCount: 0 }));
    let init = await receive(dealer, 'Init');
    while (init.t === MsgType.Welcome) init = await receive(dealer, 'Init');
    if (init.t === MsgType.Stop) {
      report.stop = { reason: init.reason, failed: init.failed };
      return;
    }
    if (init.t !== MsgType.Init) throw new Error(`rank ${rank}: expected Init, got ${MsgType[init.t]}`);
    const lengths = { d: init.frames.dWeights.length, g: init.frames.gWeights.length };
    report.lengths = lengths;
    const h = createHash('sha256');
    for (const a of [init.frames.gWeights, init.frames.dWeights, init.frames.bnStats]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const checksum = h.digest('hex').slice(0, 16);
    if (welcome.reduction.kind === 'sharded') link = await ShardLink.open(welcome.reduction, { coordinator: config.connect, rank, lengths });
    const sign = signOf(rank, worldSize);
    const grads = { d: fixedGradient(lengths.d, sign, worldSize), g: fixedGradient(lengths.g, sign, worldSize) };
    let open: HostPhaseRecord | undefined;
    for (;;) {
      const msg = await receive(dealer, 'the next PhaseStep');
      const t = now();
      if (msg.t === MsgType.Stop) {
        report.stop = { reason: msg.reason, failed: msg.failed };
        return;
      }
      if (msg.t !== MsgType.PhaseStep && msg.t !== MsgType.Finish) throw new Error(`rank ${rank}: unexpected ${MsgType[msg.t]} during training`);
      let have = t;
      if (msg.applyTo !== '' && link) {
        await link.gather(msg.step, msg.applyTo, config.timeoutMs);
        have = now();
      }
      if (open) open.end = have;
      open = undefined;
      if (msg.t === MsgType.Finish) {
        if (config.sampleCpu) {
          const c = cpuTicks();
          if (c) report.endCpu = { ...c, at: t };
        }
        await dealer.send(encode({ t: MsgType.Finished, step: msg.step, checksum }));
        continue;
      }
      const network = networkOf.get(msg.phase);
      if (!network) throw new Error(`rank ${rank}: phase ${msg.phase} is not in the phase table`);
      const rec: HostPhaseRecord = { step: msg.step, phase: msg.phase, start: t };
      if (config.sampleCpu) {
        const c = cpuTicks();
        if (c) rec.cpu = c;
      }
      report.records.push(rec);
      open = rec;
      const c0 = now();
      if (config.sleepMs > 0) await sleep(config.sleepMs);
      rec.computed = now();
      rec.computeMs = rec.computed - c0;
      const computeSeconds = rec.computeMs / 1000;
      const grad = grads[network];
      if (link) await link.push(msg.step, msg.phase, network, grad);
      const stats = network === 'd' ? { dLoss: Math.LN2, dAccuracyReal: 0.5, dAccuracyFake: 0.5 } : { gLoss: Math.LN2 };
      await dealer.send(
        encode({
          t: MsgType.PhaseResult,
          step: msg.step,
          phase: msg.phase,
          stats,
          computeSeconds,
          dataSeconds: 0,
          applySeconds: 0,
          ...(msg.checksum ? { checksum } : {}),
          frames: { grad: link ? EMPTY_F32 : grad, aux: EMPTY_F32 },
        }),
      );
    }
  } finally {
    link?.close();
    dealer.close();
  }
}

main().then(
  () => {
    process.stdout.write(JSON.stringify(report) + '\n');
    process.exit(0);
  },
  (e: unknown) => {
    report.error = e instanceof Error ? e.message : String(e);
    process.stdout.write(JSON.stringify(report) + '\n');
    process.exit(1);
  },
);
