/**
 * The simulated-hosts part of `distgan bench --suite reduce` (also alone as
 * `--suite reduce-hosts`): star and sharded reductions across simulated
 * hosts with rate-limited links, against the bandwidth-optimal bound.
 *
 * Rig (bench/netns-rig.ts): one network namespace per host, joined by veth
 * pairs to a bridge; every host's link is limited to B each way by a `tc`
 * token bucket on both ends of its veth pair (the host's own egress: a deep
 * queue, as a NIC that holds packets back; the bridge's port towards the
 * host: 200 ms at B, a switch's buffer). Host 0 runs the real
 * `distgan coordinator`, a host like the others; hosts 1..N each run one
 * simulated worker (bench/sim-host-child.ts: distgan's protocol, fixed
 * gradients that sum to zero, a sleep instead of compute) and, for sharded,
 * one `distgan reducer` (BytePS places a summation server per worker host;
 * the coordinator runs with --reduction sharded --reducers N). With star
 * every worker's whole gradient goes through the coordinator's link each
 * way, so star's phase grows as N·S/B; with sharded each host's link carries
 * about 2·(N−1)/N·S per phase, under the bound 2·S/B whatever N.
 *
 * First a raw TCP transfer between two hosts (bench/netns-rate-child.ts)
 * checks the limit and measures B as a TCP stream sees it (payload rate;
 * tbf counts whole frames, so about 96 % of the nominal rate): the bound
 * uses that measured B (`boundMs`), the nominal one is reported beside it
 * (`boundNominalMs`).
 *
 * Part 1, exchange against the bound: N = --hosts (2, 4, 8), links at
 * --host-rate (100 Mbit/s), the MLP on ring8 at --host-width (8: 2.2 M
 * parameters, 4.4 MB per phase), no sleep. The exchange time is measured in
 * the simulated workers: phase p lasts from the first worker's receipt of its
 * PhaseStep to the first worker's receipt of the next one (the last phase: to
 * the last worker holding its whole average), less the slowest worker's
 * simulated compute (0 here), which is how step-summary.ts defines it from
 * the coordinator's side (whose own figure, from stats.jsonl, is reported
 * beside it). The bound is 2·S/B with S the bytes of the phase's gradient
 * (D and G phases averaged). Beside each run, the raw TCP floor of the same
 * traffic (bench/netns-pattern-child.ts: the same bytes between the same
 * hosts over plain TCP, no protocol). `shardedOverBound` is the worst ratio
 * of sharded's mean exchange to the bound over those N.
 *
 * Part 2, a GPU-speed step simulated: workers sleep T ms per phase (T =
 * --gpu-sleep, 10 and 50) instead of computing, a DCGAN-MNIST without batch
 * norm of --gpu-params (10) million parameters, links at --gpu-rate (1000
 * Mbit/s), N = --gpu-hosts (1, 2, 4, 8), star and sharded. Scaling efficiency
 * at N = (N-host throughput) / (N × 1-host throughput of the same reduction);
 * `efficiencyVsCompute` divides by N × the throughput of compute alone (a
 * step of 2·T ms).
 *
 * Every run also reports the CPU over its timed phases (/proc, read by rank
 * 0): `runCpuCores` (this run's processes), `otherCpuCores` (everything else
 * on the machine) and `machineCpuBusy`, so a figure limited by this
 * machine's CPU rather than by the links shows.
 *
 * Needs root and iproute2; without them the result is {available: false,
 * reason}. Namespaces, links, qdiscs and processes are removed at the end,
 * on failure and on SIGINT/SIGTERM.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { DistganError } from '../src/shared/errors.js';
import { parameterCounts, resolveModelSpec } from '../src/shared/models/spec.js';
import { CLI_BIN, PACKAGE_ROOT } from '../src/shared/version.js';
import { reasonFromStderr } from './child.js';
import { NetnsRig, rigUnavailable, sweepStale } from './netns-rig.js';
import type { PatternConfig } from './netns-pattern-child.js';
import type { SimHostConfig, SimHostReport } from './sim-host-child.js';

export interface ReduceHostsOptions {
  /** Timed steps per run (each a D and a G phase). */
  steps: number;
  /** Steps left out before them (default 1). */
  warmup?: number;
  /** Part 1: worker hosts (default 2, 4, 8). */
  hosts?: number[];
  /** Part 1: link rate, Mbit/s (default 100). */
  rateMbit?: number;
  /** Part 1: MLP width on ring8 (default 8: 2.2 M parameters). */
  width?: number;
  /** Part 2: worker hosts (default 1, 2, 4, 8); empty skips part 2. */
  gpuHosts?: number[];
  /** Part 2: simulated compute per phase, ms (default 10, 50); empty skips part 2. */
  gpuSleepMs?: number[];
  /** Part 2: model size, millions of parameters (a DCGAN-MNIST without BN; default 10). */
  gpuParams?: number;
  /** Part 2: link rate, Mbit/s (default 1000). */
  gpuRateMbit?: number;
  /** Samples per worker per step (default 64). */
  perWorkerBatch?: number;
  /** Where to write every run's raw per-rank records (debugging; default: nowhere). */
  dumpDir?: string;
  /** tbf `latency` of the bridge's ports (the switch's buffer), ms at the link rate (default 200); hosts' own egress: 1000 (bench/netns-rig.ts). */
  portQueueMs?: number;
  /** Measure the raw TCP floor of each configuration of part 1 (default true). */
  rawFloor?: boolean;
  /** Only these reductions (experiments; default both). */
  reductions?: Array<'star' | 'sharded'>;
  /** Attributes of the simulated hosts' routes (experiments: `rto_min 5ms`, `congctl cubic`). */
  route?: string[];
  /** sysctls set in every simulated host (default: net.ipv4.tcp_limit_output_bytes 65536, see HOST_SYSCTLS). */
  sysctls?: Record<string, string>;
  /** Longest a run may take, s (default 600). */
  runTimeoutS?: number;
  log: (line: string) => void;
}

const DIST_BENCH = join(PACKAGE_ROOT, 'dist', 'bench');
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));
const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const median = (xs: number[]): number => {
  if (!xs.length) return NaN;
  const v = [...xs].sort((a, b) => a - b);
  const h = Math.floor(v.length / 2);
  return v.length % 2 ? v[h]! : (v[h - 1]! + v[h]!) / 2;
};

/**
 * Exchange per phase from phases in time order, each with its first start
 * over the ranks, its last end and its slowest rank's own work (`busy`).
 * Phase p spans from its first start to the next phase's first start (the
 * last: to its last end), so consecutive phases do not overlap: with
 * sharded, phase p+1's span holds the gather of p's averaged shards (a
 * worker gathers them when the next PhaseStep says so), as the coordinator
 * counts it (step-summary.ts: phase wall time less the slowest rank's work).
 */
function phaseSpans(list: Array<{ phase: string; start: number; end: number; busy: number }>): { exchange: Record<'d' | 'g', number[]>; first: number; last: number } {
  if (list.length === 0) throw new Error('no timed phase');
  const ordered = [...list].sort((x, y) => x.start - y.start);
  const exchange: Record<'d' | 'g', number[]> = { d: [], g: [] };
  for (let i = 0; i < ordered.length; i++) {
    const ph = ordered[i]!;
    const stop = i + 1 < ordered.length ? ordered[i + 1]!.start : ph.end;
    exchange[ph.phase === 'g' ? 'g' : 'd'].push(stop - ph.start - ph.busy);
  }
  return { exchange, first: ordered[0]!.start, last: ordered[ordered.length - 1]!.end };
}

type Model = { kind: 'mlp' | 'dcgan'; width: number; g: number; d: number; total: number };

function mlpModel(width: number): Model {
  const c = parameterCounts(resolveModelSpec('mlp', [2], { width, batchNorm: false }));
  return { kind: 'mlp', width, g: c.g, d: c.d, total: c.g + c.d };
}

/** The DCGAN-MNIST (no BN) whose G + D is closest to `target` parameters; widths are multiples of 0.01 in (0, 16]. */
function dcganModel(target: number): Model {
  const count = (width: number): Model => {
    const c = parameterCounts(resolveModelSpec('dcgan', [28, 28, 1], { width, batchNorm: false }));
    return { kind: 'dcgan', width, g: c.g, d: c.d, total: c.g + c.d };
  };
  let lo = 0.01;
  let hi = 16;
  while (hi - lo > 0.011) {
    const mid = Math.round(((lo + hi) / 2) * 100) / 100;
    if (mid <= lo || mid >= hi) break;
    if (count(mid).total < target) lo = mid;
    else hi = mid;
  }
  const a = count(lo);
  const b = count(hi);
  return Math.abs(a.total - target) <= Math.abs(b.total - target) ? a : b;
}

/** Starts a child in the rig; `done` resolves with its stdout, stderr and exit code. */
function startIn(rig: NetnsRig, host: number, args: string[]): { proc: ChildProcess; done: Promise<{ code: number | null; signal: string | null; out: string; err: string }>; out: () => string } {
  const proc = rig.spawn(host, process.execPath, args, { cwd: PACKAGE_ROOT });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) => {
    proc.once('error', (e) => resolve({ code: null, signal: null, out, err: err + e.message }));
    proc.once('exit', (code, signal) => setTimeout(() => resolve({ code, signal, out, err }), 50));
  });
  return { proc, done, out: () => out };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${(timeoutMs / 1000).toFixed(0)} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw TCP transfer from host `from` to host `to`: the payload rate a stream gets through the limits. */
async function rawRate(rig: NetnsRig, from: number, to: number, bytes: number, port: number): Promise<{ bytes: number; seconds: number; mbit: number }> {
  const sink = startIn(rig, to, [join(DIST_BENCH, 'netns-rate-child.js'), 'sink', rig.hosts[to]!.address, String(port)]);
  try {
    await waitFor('the raw-transfer sink to listen', () => sink.out().includes('ready\n'), 30_000);
    const source = startIn(rig, from, [join(DIST_BENCH, 'netns-rate-child.js'), 'source', rig.hosts[to]!.address, String(port), String(bytes)]);
    const [s, r] = await Promise.all([source.done, sink.done]);
    if (s.code !== 0) throw new Error(`raw transfer source exited ${s.code ?? s.signal}: ${reasonFromStderr(s.err).message}`);
    const last = r.out.trim().split('\n').pop() ?? '';
    const res = JSON.parse(last) as { bytes: number; seconds: number; mbit: number | null };
    if (res.bytes !== bytes || res.mbit === null) throw new Error(`raw transfer: ${res.bytes} of ${bytes} bytes arrived`);
    return { bytes: res.bytes, seconds: round(res.seconds, 4), mbit: round(res.mbit, 1) };
  } finally {
    if (sink.proc.exitCode === null) sink.proc.kill('SIGKILL');
  }
}

interface RunFigures {
  reduction: 'star' | 'sharded';
  workers: number;
  sleepMs: number;
  /** Mean exchange per phase (ms) from the simulated workers: phase wall time less the longest simulated compute. */
  exchangeMsPerPhase: number;
  /** Its median over the timed phases (less sensitive to other jobs on the machine). */
  exchangeMsPerPhaseMedian: number;
  exchangeMsPerPhaseD: number;
  exchangeMsPerPhaseG: number;
  /** The coordinator's own figure (stats.jsonl d_exchange, g_exchange), ms per phase. */
  coordinatorExchangeMsPerPhase: number | null;
  /** Wall time per timed step, ms (first timed phase's start to last's end, over the steps). */
  stepMs: number;
  imagesPerSecond: number;
  phases: number;
  /** Share of the machine's cores busy over the timed phases (1 = all). */
  machineCpuBusy: number | null;
  /** Cores' worth of CPU this run's processes used over the timed phases, and what everything else on the machine used. */
  runCpuCores: number | null;
  otherCpuCores: number | null;
  runSeconds: number;
  /** Packets the token buckets dropped during the run (TCP then resends them): on hosts' own egress, on the bridge's ports. */
  linkDrops: { host: number; port: number };
  /** Bytes of the D and G gradients (one worker, one phase). */
  bytesD: number;
  bytesG: number;
}

async function coordinatorExchange(runDir: string, warmup: number): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(join(runDir, 'stats.jsonl'), 'utf8');
  } catch {
    return null;
  }
  const xs: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let rec: { step?: number; phaseSeconds?: Record<string, number> };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    const ps = rec.phaseSeconds;
    if (typeof rec.step !== 'number' || !ps || rec.step <= warmup) continue;
    for (const k of ['d_exchange', 'g_exchange']) if (typeof ps[k] === 'number' && Number.isFinite(ps[k])) xs.push(ps[k]!);
  }
  return xs.length ? round(mean(xs) * 1000) : null;
}

/**
 * TCP's small-queue limit on the simulated hosts. This kernel offers only
 * tbf and pfifo, no fair queueing, so a host's egress token bucket is one
 * FIFO; with the default limit (4 MiB per socket) a whole shard of one flow
 * enters it before the next flow's, every host sends to host 1 first, then
 * to host 2, … and the all-to-all turns into a convoy of incasts. At 64 KiB
 * per socket the flows of a host interleave in its queue as on a host with
 * fq.
 */
const HOST_SYSCTLS: Record<string, string> = { 'net.ipv4.tcp_limit_output_bytes': '65536' };

let nextPort = 29600;

/**
 * The raw TCP floor of a reduction's traffic (bench/netns-pattern-child.ts):
 * the same bytes in the same pattern between the same hosts, back-to-back
 * phases, no protocol; ms per phase after the warm-up phases.
 */
async function rawFloor(rig: NetnsRig, o: { pattern: 'star' | 'sharded'; workers: number; bytes: [number, number]; steps: number; warmup: number; timeoutMs: number }): Promise<{ msPerPhase: number; msPerPhaseMedian: number }> {
  const hosts = o.pattern === 'star' ? o.workers + 1 : o.workers;
  const addresses = Array.from({ length: o.workers + 1 }, (_, i) => rig.hosts[i]!.address);
  const port = nextPort++;
  const startAt = Number(process.hrtime.bigint()) / 1e6 + 3000 + 300 * hosts;
  const runs = Array.from({ length: o.workers + 1 }, (_, h) => h)
    .filter((h) => o.pattern === 'star' || h > 0)
    .map((h) => {
      const cfg: PatternConfig = { pattern: o.pattern, host: h, addresses, port, bytes: o.bytes, phases: 2 * (o.warmup + o.steps), startAt, timeoutMs: o.timeoutMs };
      return startIn(rig, h, [join(DIST_BENCH, 'netns-pattern-child.js'), JSON.stringify(cfg)]);
    });
  try {
    const outs = await Promise.all(runs.map((r) => r.done));
    const bad = outs.find((x) => x.code !== 0);
    if (bad) throw new DistganError('DISTGAN_E_INTERNAL', `bench reduce (simulated hosts): raw ${o.pattern} floor with ${o.workers} host(s): a host exited ${bad.code ?? bad.signal}: ${reasonFromStderr(bad.err).message}`);
    const reports = outs.map((x) => JSON.parse(x.out.trim().split('\n').pop() ?? '') as { host: number; phases: Array<{ start: number; end: number }> }).filter((r) => r.host > 0);
    const list = [];
    for (let p = 2 * o.warmup; p < 2 * (o.warmup + o.steps); p++) {
      list.push({ phase: p % 2 ? 'g' : 'd', start: Math.min(...reports.map((r) => r.phases[p]!.start)), end: Math.max(...reports.map((r) => r.phases[p]!.end)), busy: 0 });
    }
    const ex = phaseSpans(list).exchange;
    return { msPerPhase: round(mean([...ex.d, ...ex.g])), msPerPhaseMedian: round(median([...ex.d, ...ex.g])) };
  } finally {
    for (const r of runs) if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
  }
}

/** One run: coordinator on host 0, N simulated workers (and reducers) on hosts 1..N. */
async function hostRun(rig: NetnsRig, o: { reduction: 'star' | 'sharded'; workers: number; model: Model; sleepMs: number; steps: number; warmup: number; perWorkerBatch: number; timeoutMs: number; dumpDir?: string }): Promise<RunFigures> {
  const t0 = performance.now();
  const drops0 = rig.drops();
  const out = await mkdtemp(join(tmpdir(), 'distgan-bench-reduce-hosts-'));
  const port = nextPort++;
  const endpoint = `tcp://${rig.hosts[0]!.address}:${port}`;
  const n = o.workers;
  const timeoutS = String(Math.ceil(o.timeoutMs / 1000));
  const data = o.model.kind === 'mlp' ? ['--dataset', 'ring8', '--model', 'mlp'] : ['--dataset', 'mnist', '--model', 'dcgan', '--no-batch-norm'];
  const args = [CLI_BIN, 'coordinator', '--bind', endpoint, '--world-size', String(n), '--reduction', o.reduction, ...(o.reduction === 'sharded' ? ['--reducers', String(n)] : []), ...data, '--width', String(o.model.width), '--batch-size', String(n * o.perWorkerBatch), '--steps', String(o.warmup + o.steps), '--metrics-port', '0', '--sample-every', '0', '--checkpoint-every', '0', '--keep-checkpoints', '1', '--checksum-every', '1000000', '--log-every', '1', '--log-format', 'plain', '--step-timeout', timeoutS, '--join-timeout', timeoutS, '--out', out];
  const what = `${o.reduction}, ${n} host(s), sleep ${o.sleepMs} ms`;
  const started: Array<ReturnType<typeof startIn>> = [];
  const deadline = setTimeout(() => {
    for (const c of started) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  }, o.timeoutMs + 30_000);
  try {
    const coord = startIn(rig, 0, args);
    started.push(coord);
    const reducers = o.reduction === 'sharded' ? Array.from({ length: n }, (_, i) => startIn(rig, 1 + i, [CLI_BIN, 'reducer', '--connect', endpoint, '--idle-timeout', timeoutS])) : [];
    started.push(...reducers);
    // Rank 0 last: it samples the CPU time of every other process of the run.
    const sims: Array<ReturnType<typeof startIn>> = [];
    for (let i = n - 1; i >= 0; i--) {
      const cpuPids = started.concat(sims).map((c) => c.proc.pid).filter((p): p is number => p !== undefined);
      const cfg: SimHostConfig = { connect: endpoint, rank: i, sleepMs: o.sleepMs, timeoutMs: o.timeoutMs, ...(i === 0 ? { sampleCpu: true, cpuPids } : {}) };
      sims.unshift(startIn(rig, 1 + i, [join(DIST_BENCH, 'sim-host-child.js'), JSON.stringify(cfg)]));
    }
    started.push(...sims);
    const simDone = sims.map((s) =>
      s.done.then((r) => {
        let rep: SimHostReport | undefined;
        try {
          rep = JSON.parse(r.out.trim().split('\n').pop() ?? '') as SimHostReport;
        } catch {
          // no report
        }
        if (!rep || rep.error !== undefined || r.code !== 0) {
          // Stop the coordinator too, so its exit (and the run) does not wait for its timeouts.
          if (coord.proc.exitCode === null) coord.proc.kill('SIGTERM');
          throw new Error(stragglers || `a simulated worker failed (exit ${r.code ?? r.signal}): ${rep?.error ?? reasonFromStderr(r.err).message}`);
        }
        return rep;
      }),
    );
    // A coordinator that has exited stops the run: the simulated workers and reducers get 15 s to finish, then go.
    let stragglers = '';
    void coord.done.then((c) => {
      const t = setTimeout(() => {
        const left = [...sims.map((x, i) => ({ x, what: `simulated worker ${i}` })), ...reducers.map((x, i) => ({ x, what: `reducer on host ${i + 1}` }))].filter(({ x }) => x.proc.exitCode === null && x.proc.signalCode === null);
        stragglers = `the coordinator exited ${c.code ?? c.signal} (its last lines: ${c.err.trim().split('\n').slice(-3).join(' | ')}) and ${left.map((l) => l.what).join(', ')} had not ended 15 s later (killed)`;
        for (const { x } of left) x.proc.kill('SIGKILL');
      }, 15_000);
      void Promise.all([...sims, ...reducers].map((c) => c.done)).then(() => clearTimeout(t));
    });
    const [reports, end] = await Promise.all([
      Promise.all(simDone).catch(async (e: unknown) => {
        const c = await coord.done;
        const why = c.code !== 0 ? `; the coordinator exited ${c.code ?? c.signal}: ${reasonFromStderr(c.err).message}` : '';
        throw new Error(`${(e as Error).message}${why}`);
      }),
      coord.done,
    ]);
    if (end.code !== 0) {
      const reason = reasonFromStderr(end.err);
      throw new DistganError(reason.code ?? 'DISTGAN_E_INTERNAL', `distgan coordinator exited ${end.code ?? end.signal}: ${reason.message}`);
    }
    const failedStop = reports.find((r) => r.stop?.failed)?.stop;
    if (failedStop) throw new Error(`the coordinator stopped the run with a failure: ${failedStop.reason}`);
    const rs = await Promise.all(reducers.map((r) => r.done));
    const badReducer = rs.find((r) => r.code !== 0);
    if (badReducer) throw new Error(`a reducer exited ${badReducer.code ?? badReducer.signal}: ${reasonFromStderr(badReducer.err).message}`);
    const lengths = reports[0]!.lengths!;
    if (o.dumpDir) await writeFile(join(o.dumpDir, `${o.reduction}-n${n}-sleep${o.sleepMs}-${Date.now()}.json`), JSON.stringify({ options: { ...o, model: o.model }, qdiscs: rig.qdiscStats(), coordinatorStderr: end.err, reports }));
    // Phases by (step, phase) over every rank; busy = the slowest rank's simulated compute (the sleep alone).
    const byPhase = new Map<string, Array<{ start: number; end: number; compute: number; phase: string; step: number }>>();
    for (const r of reports) {
      for (const rec of r.records) {
        if (rec.step < o.warmup) continue;
        if (rec.end === undefined || rec.computeMs === undefined) throw new Error(`rank ${r.rank}: phase ${rec.step}/${rec.phase} has no end`);
        const key = `${rec.step}/${rec.phase}`;
        const list = byPhase.get(key) ?? [];
        list.push({ start: rec.start, end: rec.end, compute: rec.computeMs, phase: rec.phase, step: rec.step });
        byPhase.set(key, list);
      }
    }
    const spans = phaseSpans(
      [...byPhase.entries()].map(([key, list]) => {
        if (list.length !== n) throw new Error(`phase ${key}: ${list.length} of ${n} ranks have a record`);
        return { phase: list[0]!.phase, start: Math.min(...list.map((x) => x.start)), end: Math.max(...list.map((x) => x.end)), busy: Math.max(...list.map((x) => x.compute)) };
      }),
    );
    const ex = spans.exchange;
    const phases = ex.d.length + ex.g.length;
    const { first, last } = spans;
    const stepMs = (last - first) / o.steps;
    // CPU over the timed phases, from rank 0's samples.
    const r0 = reports.find((r) => r.rank === 0)!;
    const firstCpu = r0.records.find((r) => r.step === o.warmup)?.cpu;
    const endCpu = r0.endCpu;
    const cpuWindow = firstCpu && endCpu && endCpu.total > firstCpu.total ? { total: endCpu.total - firstCpu.total, busy: endCpu.busy - firstCpu.busy, own: endCpu.own - firstCpu.own } : undefined;
    const cores = cpus().length;
    const machineCpuBusy = cpuWindow ? round(cpuWindow.busy / cpuWindow.total) : null;
    // /proc/stat's total counts every core; a process's ticks count one.
    const runCpuCores = cpuWindow ? round((cpuWindow.own / cpuWindow.total) * cores, 2) : null;
    const otherCpuCores = cpuWindow ? round(Math.max(0, (cpuWindow.busy - cpuWindow.own) / cpuWindow.total) * cores, 2) : null;
    return {
      reduction: o.reduction,
      workers: n,
      sleepMs: o.sleepMs,
      exchangeMsPerPhase: round(mean([...ex.d, ...ex.g])),
      exchangeMsPerPhaseMedian: round(median([...ex.d, ...ex.g])),
      exchangeMsPerPhaseD: round(mean(ex.d)),
      exchangeMsPerPhaseG: round(mean(ex.g)),
      coordinatorExchangeMsPerPhase: await coordinatorExchange(out, o.warmup),
      stepMs: round(stepMs),
      imagesPerSecond: round((n * o.perWorkerBatch * 1000) / stepMs, 2),
      phases,
      machineCpuBusy,
      runCpuCores,
      otherCpuCores,
      runSeconds: round((performance.now() - t0) / 1000, 2),
      linkDrops: ((d) => ({ host: d.host - drops0.host, port: d.port - drops0.port }))(rig.drops()),
      bytesD: lengths.d * 4,
      bytesG: lengths.g * 4,
    };
  } catch (e) {
    throw new DistganError(e instanceof DistganError ? e.code : 'DISTGAN_E_INTERNAL', `bench reduce (simulated hosts), ${what}: ${(e as Error).message}`);
  } finally {
    clearTimeout(deadline);
    for (const c of started) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await Promise.all(started.map((c) => c.done));
    await rm(out, { recursive: true, force: true });
  }
}

const cpuText = (r: RunFigures): string => (r.runCpuCores === null ? 'CPU not sampled' : `CPU: this run ${r.runCpuCores.toFixed(2)} cores, the rest of the machine ${r.otherCpuCores!.toFixed(2)}, of ${cpus().length}`);

export async function runReduceHostsBench(o: ReduceHostsOptions): Promise<Record<string, unknown>> {
  const reason = rigUnavailable();
  if (reason !== undefined) {
    o.log(`reduce (simulated hosts): not available: ${reason}`);
    return { available: false, reason };
  }
  const warmup = o.warmup ?? 1;
  const hosts = o.hosts ?? [2, 4, 8];
  const rateMbit = o.rateMbit ?? 100;
  const width = o.width ?? 8;
  const gpuHosts = o.gpuHosts ?? [1, 2, 4, 8];
  const gpuSleep = o.gpuSleepMs ?? [10, 50];
  const gpuParams = o.gpuParams ?? 10;
  const gpuRateMbit = o.gpuRateMbit ?? 1000;
  const perWorkerBatch = o.perWorkerBatch ?? 64;
  const timeoutMs = (o.runTimeoutS ?? 600) * 1000;
  const gpuPart = gpuHosts.length > 0 && gpuSleep.length > 0;
  const maxHosts = Math.max(2, ...hosts, ...(gpuPart ? gpuHosts : []));
  const started = new Date().toISOString();
  const loadStart = loadavg();
  const stale = sweepStale();
  if (stale.length) o.log(`reduce (simulated hosts): removed ${stale.length} namespace(s) left by an earlier bench that was killed: ${stale.join(' ')}`);
  o.log(`reduce (simulated hosts): ${cpus().length} cores, load ${loadStart.map((x) => x.toFixed(2)).join(' ')}; ${maxHosts} worker hosts + 1 coordinator host in network namespaces; ${o.steps} timed step(s) after ${warmup} warm-up`);
  const portQueueMs = o.portQueueMs ?? 200;
  const rig = NetnsRig.create(maxHosts + 1, { rateMbit, portQueueMs }, { ...(o.route ? { route: o.route } : {}), sysctls: o.sysctls ?? HOST_SYSCTLS });
  const reductions = o.reductions ?? (['star', 'sharded'] as const);
  try {
    // 16 phases' worth of one worker's gradient, at least 1 MiB, at most 2 s at the nominal rate.
    const rateCheck = async (mbit: number, m: Model): Promise<{ nominalMbit: number; measuredMbit: number; bytes: number; seconds: number }> => {
      if (rig.shape?.rateMbit !== mbit) rig.setShape({ rateMbit: mbit, portQueueMs });
      const bytes = Math.round(Math.max(1 << 20, Math.min(16 * 2 * m.total, ((mbit * 1e6) / 8) * 2)));
      const r = await rawRate(rig, 1, 0, bytes, nextPort++);
      o.log(`  raw TCP, host 1 → coordinator host, links at ${mbit} Mbit/s: ${r.mbit.toFixed(1)} Mbit/s (${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(2)} s)`);
      return { nominalMbit: mbit, measuredMbit: r.mbit, bytes: r.bytes, seconds: r.seconds };
    };

    // Part 1: exchange against 2·S/B.
    const m1 = mlpModel(width);
    o.log(`reduce (simulated hosts), part 1: exchange vs 2·S/B; MLP width ${width} on ring8: ${m1.total} parameters (G ${m1.g}, D ${m1.d}); links ${rateMbit} Mbit/s`);
    const link1 = await rateCheck(rateMbit, m1);
    const results: Array<Record<string, unknown>> = [];
    const boundOf = (r: RunFigures, mbit: number): number => {
      // Mean over the timed phases (D and G alternate) of 2·S/B, ms.
      const bytesPerMs = (mbit * 1e6) / 8 / 1000;
      return ((r.bytesD + r.bytesG) / 2) * 2 / bytesPerMs;
    };
    for (const n of hosts) {
      for (const reduction of reductions) {
        const r = await hostRun(rig, { reduction, workers: n, model: m1, sleepMs: 0, steps: o.steps, warmup, perWorkerBatch, timeoutMs, ...(o.dumpDir ? { dumpDir: o.dumpDir } : {}) });
        const raw = o.rawFloor === false ? null : await rawFloor(rig, { pattern: reduction, workers: n, bytes: [r.bytesD, r.bytesG], steps: o.steps, warmup, timeoutMs });
        const boundMs = boundOf(r, link1.measuredMbit);
        const boundNominalMs = boundOf(r, link1.nominalMbit);
        const row = {
          ...r,
          rawTcpMsPerPhase: raw?.msPerPhase ?? null,
          rawTcpMsPerPhaseMedian: raw?.msPerPhaseMedian ?? null,
          overRawTcp: raw ? round(r.exchangeMsPerPhase / raw.msPerPhase) : null,
          rawTcpOverBound: raw ? round(raw.msPerPhase / boundMs) : null,
          overBoundMedian: round(r.exchangeMsPerPhaseMedian / boundMs),
          bytesPerPhase: (r.bytesD + r.bytesG) / 2,
          boundMs: round(boundMs),
          boundNominalMs: round(boundNominalMs),
          overBound: round(r.exchangeMsPerPhase / boundMs),
          overNominalBound: round(r.exchangeMsPerPhase / boundNominalMs),
          coordinatorOverBound: r.coordinatorExchangeMsPerPhase === null ? null : round(r.coordinatorExchangeMsPerPhase / boundMs),
        };
        o.log(`  N=${n} ${reduction.padEnd(7)} exchange ${r.exchangeMsPerPhase.toFixed(1)} ms/phase (median ${r.exchangeMsPerPhaseMedian.toFixed(1)}; coordinator's figure ${r.coordinatorExchangeMsPerPhase?.toFixed(1) ?? '?'}), 2·S/B ${boundMs.toFixed(1)} ms → ${row.overBound.toFixed(2)}× (median ${row.overBoundMedian.toFixed(2)}×); raw TCP, same traffic: ${raw ? `${raw.msPerPhase.toFixed(1)} ms/phase (${row.rawTcpOverBound!.toFixed(2)}× 2·S/B)` : 'skipped'}; ${r.linkDrops.host + r.linkDrops.port} packets dropped; ${cpuText(r)}`);
        results.push(row);
      }
    }
    const ratios = (red: string): Record<string, number> => Object.fromEntries(results.filter((r) => r['reduction'] === red).map((r) => [String(r['workers']), r['overBound'] as number]));
    const shardedRatios = ratios('sharded');
    const starRatios = ratios('star');
    const shardedOverBound = Object.values(shardedRatios).length ? round(Math.max(...Object.values(shardedRatios))) : null;

    // Part 2: GPU-speed step, scaling 1 → N hosts.
    let gpu: Record<string, unknown> | null = null;
    if (gpuPart) {
      const m2 = dcganModel(gpuParams * 1e6);
      o.log(`reduce (simulated hosts), part 2: GPU-speed step (sleep ${gpuSleep.join(', ')} ms per phase); DCGAN-MNIST, no BN, width ${m2.width}: ${m2.total} parameters (G ${m2.g}, D ${m2.d}); links ${gpuRateMbit} Mbit/s`);
      const link2 = await rateCheck(gpuRateMbit, m2);
      const rows: Array<Record<string, unknown>> = [];
      const efficiency: Record<string, Record<string, Record<string, number>>> = {};
      for (const sleepMs of gpuSleep) {
        for (const reduction of reductions) {
          let one: RunFigures | undefined;
          for (const n of [...gpuHosts].sort((a, b) => a - b)) {
            const r = await hostRun(rig, { reduction, workers: n, model: m2, sleepMs, steps: o.steps, warmup, perWorkerBatch, timeoutMs, ...(o.dumpDir ? { dumpDir: o.dumpDir } : {}) });
            if (n === 1) one = r;
            const computeOnly = (perWorkerBatch * 1000) / (2 * sleepMs);
            const eff = one ? round(r.imagesPerSecond / (n * one.imagesPerSecond)) : null;
            const effCompute = round(r.imagesPerSecond / (n * computeOnly));
            const boundMs = boundOf(r, link2.measuredMbit);
            rows.push({ ...r, efficiency: eff, efficiencyVsCompute: effCompute, boundMs: round(boundMs), overBound: round(r.exchangeMsPerPhase / boundMs) });
            ((efficiency[`sleep${sleepMs}`] ??= {})[reduction] ??= {})[String(n)] = eff ?? NaN;
            o.log(`  T=${sleepMs} ms ${reduction.padEnd(7)} N=${n}: ${r.stepMs.toFixed(1)} ms/step, ${r.imagesPerSecond.toFixed(1)} images/s, efficiency ${eff?.toFixed(2) ?? '—'} (vs compute alone ${effCompute.toFixed(2)}); exchange ${r.exchangeMsPerPhase.toFixed(1)} ms/phase (2·S/B ${boundMs.toFixed(1)}); ${cpuText(r)}`);
          }
        }
      }
      gpu = { model: { kind: 'dcgan', dataset: 'mnist', batchNorm: false, width: m2.width, params: m2.total, gParams: m2.g, dParams: m2.d, paramsTarget: gpuParams * 1e6 }, link: link2, sleepMs: gpuSleep, hosts: gpuHosts, results: rows, efficiency };
    }
    const loadEnd = loadavg();
    return {
      available: true,
      started,
      machine: { cores: cpus().length, memoryGiB: round(totalmem() / 2 ** 30, 1), loadAverageStart: loadStart.map((x) => round(x, 2)), loadAverageEnd: loadEnd.map((x) => round(x, 2)) },
      rig: { coordinatorHosts: 1, workerHostsMax: maxHosts, qdisc: `tbf on both ends of each host's veth, burst 256 KiB; host egress queue 1000 ms, bridge port queue ${portQueueMs} ms at the link rate`, hostSysctls: o.sysctls ?? HOST_SYSCTLS, placement: 'coordinator alone on host 0; worker i (and, for sharded, reducer i) on host i+1' },
      steps: o.steps,
      warmup,
      perWorkerBatch,
      exchange: {
        model: { kind: 'mlp', dataset: 'ring8', width, params: m1.total, gParams: m1.g, dParams: m1.d },
        link: link1,
        boundUses: 'measured B (raw TCP payload rate); boundNominalMs uses the nominal tc rate',
        measuredIn: "the simulated workers: from the first worker's receipt of the phase's PhaseStep to the first worker's receipt of the next one (the last phase: to the last worker holding its whole average), less the slowest worker's simulated compute",
        results,
        starOverBound: starRatios,
        shardedOverBoundByHosts: shardedRatios,
      },
      gpuStep: gpu,
      shardedOverBound,
    };
  } finally {
    await rig.close();
  }
}
