/**
 * `distgan bench --suite reduce`: the gradient reductions (star and sharded)
 * with N simulated workers that send fixed gradients and do no compute, on
 * one machine, beside the raw ZeroMQ floor for the same bytes and the
 * summation rate against memcpy.
 *
 * For every N (--workers) and model size (--params, millions; a DCGAN-MNIST
 * without BN, its width chosen so that G + D is closest to the target; the
 * actual counts are reported):
 *  - raw floor: the same peers move the same bytes per phase over bare
 *    ZeroMQ (bench/raw-router-child.ts, bench/sim-worker-child.ts mode raw):
 *    with one router (star's traffic) and with K routers in K threads
 *    (sharded's);
 *  - star and sharded: a real `distgan coordinator` process (ipc, --reduction
 *    star | sharded --reduce-shards K) and N simulated workers, multiplexed
 *    in up to --sim-processes processes (bench/sim-worker-child.ts). Their
 *    gradients sum to exactly zero, so the replicas never change and the run
 *    ends with the coordinator's own checksum check passing.
 *
 * Per phase (D and G alike; first --warmup steps left out), from the
 * simulated workers' side: the exchange time, from the first worker's
 * receipt of the phase's PhaseStep to the moment the last worker held the
 * whole averaged update (with no compute, that is the whole phase); the
 * coordinator's CPU time (all its threads, and split into its main thread,
 * its ZeroMQ I/O threads and the rest: the shard owners with V8's helpers),
 * sampled from /proc at the first timed phase and after the last
 * (bench/proc-cpu.ts). The coordinator's own per-step exchange figure
 * (stats.jsonl, step-summary.ts: phase wall time minus the slowest rank's
 * reported work, here 0) is reported beside it.
 *
 * The summation rate (bench/reduce-sum-child.ts): K threads run the real
 * ShardOwner.add over one phase's parts of N ranks each, in parallel, against
 * TypedArray.set (memcpy) of the same parts; `sumShareOfMemcpy` is the
 * ratio, for N = the largest --workers and the 10 M model (else the largest
 * --params). Configurations whose one-way bytes per phase pass (N × params ×
 * 4) exceed --max-pass-gib are skipped and listed with the reason.
 *
 * Progress on stderr; the returned object is the suite's JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { DistganError } from '../src/shared/errors.js';
import { parameterCounts, resolveModelSpec } from '../src/shared/models/spec.js';
import { CLI_BIN, PACKAGE_ROOT } from '../src/shared/version.js';
import { reasonFromStderr, runJsonChild } from './child.js';
import { cpuDelta, type ThreadCpu } from './proc-cpu.js';
import type { SumConfig, SumResult } from './reduce-sum-child.js';
import type { CpuSample, PhaseRecord, SimConfig, SimReport } from './sim-worker-child.js';

export interface ReduceBenchOptions {
  /** Timed steps per measurement (each a D and a G phase). */
  steps: number;
  /** Steps left out before them (default 1). */
  warmup?: number;
  workers: number[];
  /** Model sizes, millions of parameters (G + D). */
  params: number[];
  /** Shard owners of the sharded reduction (and routers of its raw floor). */
  shards: number;
  /** Most processes the simulated workers are spread over (default 4). */
  simProcesses?: number;
  /** Skip a configuration whose N × params × 4 bytes exceed this many GiB (default 2.5). */
  maxPassGiB?: number;
  /** Reps of the summation measurement (default 3). */
  sumReps?: number;
  log: (line: string) => void;
}

const DIST_BENCH = join(PACKAGE_ROOT, 'dist', 'bench');
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

/** The DCGAN-MNIST (no BN) whose G + D is closest to `target` parameters, by width. */
export function modelForParams(target: number): { width: number; g: number; d: number; total: number } {
  const count = (width: number): { g: number; d: number; total: number } => {
    const c = parameterCounts(resolveModelSpec('dcgan', [28, 28, 1], { width, batchNorm: false }));
    return { g: c.g, d: c.d, total: c.g + c.d };
  };
  let best = { width: 1, ...count(1) };
  // Counts grow with width; scan coarse then fine (widths are multiples of 0.01 in (0, 16]).
  let lo = 0.01;
  let hi = 16;
  while (hi - lo > 0.01) {
    const mid = Math.round(((lo + hi) / 2) * 100) / 100;
    if (mid <= lo || mid >= hi) break;
    if (count(mid).total < target) lo = mid;
    else hi = mid;
  }
  for (const w of [lo, hi]) {
    const c = count(w);
    if (Math.abs(c.total - target) < Math.abs(best.total - target)) best = { width: w, ...c };
  }
  return best;
}

interface PhaseFigures {
  /** Mean exchange time per phase (ms), D and G phases together, then each. */
  exchangeMsPerPhase: number;
  exchangeMsPerPhaseD: number;
  exchangeMsPerPhaseG: number;
  /** Timed phases averaged. */
  phases: number;
  /** CPU of the coordinator (or raw router) process per phase, ms, by thread group. */
  cpuMsPerPhase: ThreadCpu | null;
  /** That CPU over the window's wall time (1 = one core busy). */
  cpuCores: number | null;
  /** CPU of all simulated-worker processes per phase, ms. */
  simCpuMsPerPhase: number | null;
}

/** Exchange times per (step, phase) from every peer's records, and CPU over the timed window. */
function phaseFigures(reports: SimReport[], worldSize: number, warmup: number, cpuPid: number | undefined): PhaseFigures {
  const byPhase = new Map<string, PhaseRecord[]>();
  for (const r of reports) {
    for (const rec of r.records) {
      if (rec.step < warmup) continue;
      const key = `${rec.step}/${rec.phase}`;
      const list = byPhase.get(key) ?? [];
      list.push(rec);
      byPhase.set(key, list);
    }
  }
  const times: Record<'d' | 'g', number[]> = { d: [], g: [] };
  for (const [key, list] of byPhase) {
    if (list.length !== worldSize || list.some((x) => x.end === undefined)) throw new Error(`phase ${key}: ${list.length} of ${worldSize} peers have a complete record`);
    const start = Math.min(...list.map((x) => x.start));
    const end = Math.max(...list.map((x) => x.end!));
    const phase = list[0]!.phase === 'g' ? 'g' : 'd';
    times[phase].push(end - start);
  }
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const all = [...times.d, ...times.g];
  const phases = all.length;
  // CPU over the window: from the first timed phase's start to after the last, as seen by each process's lowest rank.
  const window = (samples: CpuSample[]): { first: CpuSample; last: CpuSample } | undefined => {
    const first = samples.find((s) => s.step === warmup && s.phase !== 'end');
    const last = samples.find((s) => s.phase === 'end');
    return first && last ? { first, last } : undefined;
  };
  let cpuMsPerPhase: ThreadCpu | null = null;
  let cpuCores: number | null = null;
  const sampler = reports.find((r) => r.ranks.includes(0));
  const w = sampler ? window(sampler.samples) : undefined;
  if (w && cpuPid !== undefined) {
    const a = w.first.cpu[String(cpuPid)];
    const b = w.last.cpu[String(cpuPid)];
    if (a && b) {
      const d = cpuDelta(a, b);
      cpuMsPerPhase = { main: d.main / 1e6 / phases, zmq: d.zmq / 1e6 / phases, other: d.other / 1e6 / phases, total: d.total / 1e6 / phases };
      cpuCores = d.total / 1e6 / (w.last.at - w.first.at);
    }
  }
  let simCpu = 0;
  let simOk = true;
  for (const r of reports) {
    const rw = window(r.samples);
    if (!rw) simOk = false;
    else simCpu += rw.last.ownCpuMs - rw.first.ownCpuMs;
  }
  return {
    exchangeMsPerPhase: round(mean(all)),
    exchangeMsPerPhaseD: round(mean(times.d)),
    exchangeMsPerPhaseG: round(mean(times.g)),
    phases,
    cpuMsPerPhase: cpuMsPerPhase && { main: round(cpuMsPerPhase.main), zmq: round(cpuMsPerPhase.zmq), other: round(cpuMsPerPhase.other), total: round(cpuMsPerPhase.total) },
    cpuCores: cpuCores === null ? null : round(cpuCores),
    simCpuMsPerPhase: simOk && phases ? round(simCpu / phases) : null,
  };
}

/** Ranks 0..N-1 in contiguous blocks over min(N, processes) processes. */
function rankBlocks(worldSize: number, processes: number): number[][] {
  const p = Math.max(1, Math.min(worldSize, processes));
  return Array.from({ length: p }, (_, j) => {
    const lo = Math.floor((j * worldSize) / p);
    const hi = Math.floor(((j + 1) * worldSize) / p);
    return Array.from({ length: hi - lo }, (_, i) => lo + i);
  });
}

interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  last: string;
  stderr: string;
}

interface Child {
  proc: ChildProcess;
  /** Resolves once `ready` (a whole stdout line) was printed; rejects if the child exits first. */
  ready: Promise<void>;
  done: Promise<ChildEnd>;
}

/**
 * Spawns `node args…`; `ready` waits for a stdout line matching `readyLine`,
 * `onLine` sees every whole line of stdout and stderr, and `done` has the
 * exit and the last stdout line. Killed (SIGKILL) at the deadline.
 */
function startChild(args: string[], opts: { readyLine?: (line: string) => boolean; onLine?: (line: string) => void; timeoutMs: number }): Child {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let readyResolve: () => void = () => {};
  let readyReject: (e: Error) => void = () => {};
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  if (opts.readyLine === undefined) readyResolve();
  const lines = (acc: string, chunk: string): string => {
    const text = acc + chunk;
    const parts = text.split('\n');
    for (const line of parts.slice(0, -1)) {
      if (opts.readyLine?.(line)) readyResolve();
      opts.onLine?.(line);
    }
    return parts[parts.length - 1]!;
  };
  let outTail = '';
  let errTail = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    outTail = lines(outTail, d.toString());
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    errTail = lines(errTail, d.toString());
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs);
  const done = new Promise<ChildEnd>((resolve) => {
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      readyReject(new Error(`exited ${code ?? signal} before it was ready: ${reasonFromStderr(err).message}`));
      setTimeout(() => resolve({ code, signal, last: out.trim().split('\n').pop() ?? '', stderr: err }), 50);
    });
  });
  ready.catch(() => {});
  return { proc, ready, done };
}

const isReport = (line: string): boolean => line.startsWith('{') && line.includes('"records"') && !line.includes('"error"');

interface Sims {
  /** Every process's report, from its last line at exit; rejects naming the first failure. */
  done: Promise<SimReport[]>;
  /** Every process's first complete report (mode distgan: printed once all its peers answered Finish). */
  reported: Promise<SimReport[]>;
  kill: () => void;
}

/** Starts the simulated-worker processes. `kill` ends those still running (when the other side of the measurement failed first, or is done). */
function startSims(configs: SimConfig[], timeoutMs: number, what: string): Sims {
  const children = configs.map((c) => {
    let first: SimReport | undefined;
    const ch = startChild([join(DIST_BENCH, 'sim-worker-child.js'), JSON.stringify(c)], {
      timeoutMs,
      readyLine: (line) => {
        if (!isReport(line) || first) return false;
        first = JSON.parse(line) as SimReport;
        return true;
      },
    });
    return { ...ch, first: () => first! };
  });
  const fromEnd = async (ch: Child): Promise<SimReport> => {
    const end = await ch.done;
    let report: SimReport | undefined;
    try {
      report = JSON.parse(end.last) as SimReport;
    } catch {
      report = undefined;
    }
    if (end.code !== 0 || !report || report.error !== undefined) {
      throw new DistganError('DISTGAN_E_INTERNAL', `bench --suite reduce: ${what}: a simulated-worker process exited ${end.code ?? end.signal}: ${report?.error ?? reasonFromStderr(end.stderr).message}`);
    }
    return report;
  };
  const done = Promise.all(children.map(fromEnd));
  const reported = Promise.all(children.map(async (ch) => (await ch.ready, ch.first())));
  done.catch(() => {});
  reported.catch(() => {});
  return {
    done,
    reported,
    kill: () => {
      for (const ch of children) if (ch.proc.exitCode === null && ch.proc.signalCode === null) ch.proc.kill('SIGKILL');
    },
  };
}

/** Waits for the simulated workers and the process they talk to; whichever fails first ends the other. */
async function bothEnd(sims: Sims, other: Child, otherFailed: (end: ChildEnd) => Error): Promise<SimReport[]> {
  const otherEnd = other.done.then((end) => {
    if (end.code !== 0) {
      sims.kill();
      throw otherFailed(end);
    }
  });
  const simsEnd = sims.done.catch((e: unknown) => {
    if (other.proc.exitCode === null) other.proc.kill('SIGTERM');
    throw e;
  });
  const [reports] = await Promise.all([simsEnd, otherEnd]);
  return reports;
}

const ipcPath = (tag: string): string => `ipc://${join(tmpdir(), `distgan-bench-reduce-${process.pid}-${randomBytes(3).toString('hex')}-${tag}.sock`)}`;

async function rawFloor(o: { worldSize: number; d: number; g: number; routers: number; steps: number; warmup: number; simProcesses: number; timeoutMs: number }): Promise<PhaseFigures> {
  const endpoints = Array.from({ length: o.routers }, (_, k) => ipcPath(`raw-${k}`));
  const phases = 2 * o.steps;
  const router = startChild([join(DIST_BENCH, 'raw-router-child.js'), JSON.stringify({ endpoints, worldSize: o.worldSize, dLength: o.d, gLength: o.g, phases, timeoutMs: o.timeoutMs })], { readyLine: (l) => l === 'ready', timeoutMs: o.timeoutMs });
  try {
    await router.ready;
    const sims = rankBlocks(o.worldSize, o.simProcesses).map(
      (ranks): SimConfig => ({ mode: 'raw', ranks, worldSize: o.worldSize, endpoints, dLength: o.d, gLength: o.g, phases, timeoutMs: o.timeoutMs, ...(ranks.includes(0) ? { cpuPids: [router.proc.pid!] } : {}) }),
    );
    const what = `raw floor with ${o.routers} router(s)`;
    const reports = await bothEnd(startSims(sims, o.timeoutMs, what), router, (end) => new DistganError('DISTGAN_E_INTERNAL', `bench --suite reduce: ${what}: the router process exited ${end.code ?? end.signal}: ${/^\{/.test(end.last) ? end.last : reasonFromStderr(end.stderr).message}`));
    return phaseFigures(reports, o.worldSize, o.warmup, router.proc.pid);
  } finally {
    if (router.proc.exitCode === null) router.proc.kill('SIGKILL');
    await Promise.all(endpoints.map((e) => rm(e.replace(/^ipc:\/\//, ''), { force: true })));
  }
}

interface CoordinatorRun extends PhaseFigures {
  /** The coordinator's own mean exchange per phase over the timed steps (stats.jsonl: d_exchange, g_exchange). */
  coordinatorExchangeMsPerPhase: number | null;
  coordinatorPeakRssMiB: number | null;
  /** Wall seconds of the run: start-up, Init to every rank, the steps, and the final checksum check (the final sample grid, checkpoint and export are not waited for). */
  runSeconds: number;
}

async function coordinatorRun(o: { reduction: 'star' | 'sharded'; worldSize: number; width: number; shards: number; steps: number; warmup: number; simProcesses: number; timeoutMs: number }): Promise<CoordinatorRun> {
  const out = await mkdtemp(join(tmpdir(), 'distgan-bench-reduce-'));
  const bind = ipcPath('coordinator');
  const batch = o.worldSize * Math.max(1, Math.ceil(64 / o.worldSize));
  const total = o.warmup + o.steps;
  const t0 = now();
  const args = [CLI_BIN, 'coordinator', '--bind', bind, '--world-size', String(o.worldSize), '--reduction', o.reduction, '--reduce-shards', String(o.shards), '--dataset', 'mnist', '--model', 'dcgan', '--width', String(o.width), '--no-batch-norm', '--batch-size', String(batch), '--steps', String(total), '--metrics-port', '0', '--sample-every', '0', '--checkpoint-every', '0', '--keep-checkpoints', '1', '--checksum-every', '1000000', '--log-every', '1', '--log-format', 'plain', '--step-timeout', String(Math.ceil(o.timeoutMs / 1000)), '--join-timeout', String(Math.ceil(o.timeoutMs / 1000)), '--out', out];
  // The coordinator writes its final sample grid only after the replicas' checksums matched its
  // mirror (machine.ts onFinished: verify-checksums, sample, checkpoint, export). Once it says so, the
  // measurement is complete and verified: the run is ended there rather than waiting for the grid,
  // the checkpoint and the export (tens of seconds at 50 M parameters). If the line never comes, the
  // run simply ends by itself.
  let verify: () => void = () => {};
  const verified = new Promise<void>((resolve) => (verify = resolve));
  const finalSample = new RegExp(`sample grid at step ${total}\\b`);
  const coord = startChild(args, { timeoutMs: o.timeoutMs, onLine: (line) => finalSample.test(line) && verify() });
  const pid = coord.proc.pid!;
  let sims: Sims | undefined;
  let endedEarly = false;
  try {
    const simConfigs = rankBlocks(o.worldSize, o.simProcesses).map((ranks): SimConfig => ({ mode: 'distgan', ranks, worldSize: o.worldSize, connect: bind, timeoutMs: o.timeoutMs, ...(ranks.includes(0) ? { cpuPids: [pid] } : {}) }));
    const what = `${o.reduction} with ${o.worldSize} simulated workers`;
    sims = startSims(simConfigs, o.timeoutMs, what);
    const normal = bothEnd(sims, coord, (end) => {
      const reason = reasonFromStderr(end.stderr);
      return new DistganError(reason.code ?? 'DISTGAN_E_INTERNAL', `bench --suite reduce: distgan coordinator --reduction ${what} exited ${end.code ?? end.signal}: ${reason.message}`);
    });
    const early = verified.then(async () => {
      const r = await sims!.reported;
      endedEarly = true;
      return r;
    });
    normal.catch(() => {});
    const reports = await Promise.race([normal, early]);
    const runSeconds = round((now() - t0) / 1000, 2);
    if (!endedEarly) {
      const stop = reports.find((r) => r.stop?.failed)?.stop;
      if (stop) throw new DistganError('DISTGAN_E_INTERNAL', `bench --suite reduce: the coordinator stopped the simulated workers with a failure: ${stop.reason}`);
    }
    const figures = phaseFigures(reports, o.worldSize, o.warmup, pid);
    const sampler = reports.find((r) => r.ranks.includes(0));
    const rss = sampler?.samples.find((s) => s.phase === 'end')?.peakRssMiB?.[String(pid)];
    return { ...figures, coordinatorExchangeMsPerPhase: await coordinatorExchange(out, o.warmup), coordinatorPeakRssMiB: rss === undefined ? null : round(rss, 1), runSeconds };
  } finally {
    if (coord.proc.exitCode === null && coord.proc.signalCode === null) coord.proc.kill('SIGKILL');
    sims?.kill();
    await coord.done;
    // The coordinator leaves its ipc socket files behind, killed or not (its own, and its shard
    // owners': distgan-PID-*-shard-K.sock in the temporary folder): remove this run's.
    await removeSocketFiles(bind, pid);
    await rm(out, { recursive: true, force: true });
  }
}

async function removeSocketFiles(bind: string, pid: number): Promise<void> {
  const dir = tmpdir();
  const owners = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith(`distgan-${pid}-`) && f.endsWith('.sock'));
  await Promise.all([bind.replace(/^ipc:\/\//, ''), ...owners.map((f) => join(dir, f))].map((f) => rm(f, { force: true })));
}

/** Mean of d_exchange and g_exchange (ms) over the steps after `warmup`, from the run's stats.jsonl; null if absent. */
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
    if (typeof ps['d_exchange'] === 'number') xs.push(ps['d_exchange']);
    if (typeof ps['g_exchange'] === 'number') xs.push(ps['g_exchange']);
  }
  return xs.length ? round((xs.reduce((a, b) => a + b, 0) / xs.length) * 1000) : null;
}

export async function runReduceBench(o: ReduceBenchOptions): Promise<Record<string, unknown>> {
  const warmup = o.warmup ?? 1;
  const simProcesses = o.simProcesses ?? 4;
  const maxPassGiB = o.maxPassGiB ?? 2.5;
  const timeoutMs = 900_000;
  const started = new Date().toISOString();
  const loadStart = loadavg();
  o.log(`reduce: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} free), load ${loadStart.map((x) => x.toFixed(2)).join(' ')}; ${o.steps} timed step(s) after ${warmup} warm-up, K = ${o.shards} shards, simulated workers in up to ${simProcesses} processes`);
  const results: Array<Record<string, unknown>> = [];
  const skipped: Array<Record<string, unknown>> = [];
  const models = new Map(o.params.map((p) => [p, modelForParams(p * 1e6)]));
  for (const p of o.params) {
    const m = models.get(p)!;
    for (const n of o.workers) {
      const passBytes = n * m.total * 4;
      if (passBytes > maxPassGiB * 2 ** 30) {
        const reason = `N × params × 4 = ${(passBytes / 2 ** 30).toFixed(1)} GiB per one-way pass > --max-pass-gib ${maxPassGiB}: star's coordinator holds every rank's gradient of a phase at once (${((n * Math.max(m.g, m.d) * 4) / 2 ** 30).toFixed(1)} GiB), Init alone moves ${((3 * passBytes) / 2 ** 30).toFixed(1)} GiB, on a machine of ${(totalmem() / 2 ** 30).toFixed(0)} GiB shared with other jobs`;
        o.log(`reduce: skipped N=${n}, ${p} M: ${reason}`);
        skipped.push({ workers: n, paramsTarget: p * 1e6, params: m.total, reason });
        continue;
      }
      o.log(`reduce: N=${n}, ${(m.total / 1e6).toFixed(2)} M parameters (DCGAN width ${m.width}: G ${m.g}, D ${m.d})`);
      const shape = { worldSize: n, d: m.d, g: m.g, steps: warmup + o.steps, warmup, simProcesses, timeoutMs };
      const rawStar = await rawFloor({ ...shape, routers: 1 });
      o.log(`  raw ZeroMQ, 1 router:  ${rawStar.exchangeMsPerPhase.toFixed(1)} ms/phase`);
      const rawSharded = await rawFloor({ ...shape, routers: o.shards });
      o.log(`  raw ZeroMQ, ${o.shards} routers: ${rawSharded.exchangeMsPerPhase.toFixed(1)} ms/phase`);
      const run = { worldSize: n, width: m.width, shards: o.shards, steps: o.steps, warmup, simProcesses, timeoutMs };
      const star = await coordinatorRun({ ...run, reduction: 'star' });
      o.log(`  star:    ${star.exchangeMsPerPhase.toFixed(1)} ms/phase, coordinator CPU ${star.cpuMsPerPhase?.total.toFixed(1) ?? '?'} ms/phase (main thread ${star.cpuMsPerPhase?.main.toFixed(1) ?? '?'})`);
      const sharded = await coordinatorRun({ ...run, reduction: 'sharded' });
      o.log(`  sharded: ${sharded.exchangeMsPerPhase.toFixed(1)} ms/phase, coordinator CPU ${sharded.cpuMsPerPhase?.total.toFixed(1) ?? '?'} ms/phase (main thread ${sharded.cpuMsPerPhase?.main.toFixed(1) ?? '?'})`);
      const phaseBytes = (m.d + m.g) * 2; // mean bytes of one phase's gradient (D and G alternate)
      results.push({
        workers: n,
        paramsTarget: p * 1e6,
        params: m.total,
        gParams: m.g,
        dParams: m.d,
        width: m.width,
        bytesPerPhasePerWorker: phaseBytes,
        rawStar,
        rawSharded,
        star,
        sharded,
        starOverRaw: round(star.exchangeMsPerPhase / rawStar.exchangeMsPerPhase),
        shardedOverRaw: round(sharded.exchangeMsPerPhase / rawSharded.exchangeMsPerPhase),
        shardedOverStar: round(sharded.exchangeMsPerPhase / star.exchangeMsPerPhase),
        /** Bytes of parts summed per phase (N × phase bytes) per ms of the coordinator's non-main, non-ZeroMQ CPU (the owners): GB/s of owner CPU. */
        shardedSumGBPerOwnerCpuSecond: sharded.cpuMsPerPhase && sharded.cpuMsPerPhase.other > 0 ? round((n * phaseBytes) / (sharded.cpuMsPerPhase.other / 1000) / 1e9) : null,
      });
    }
  }

  // The summation rate: N = the largest --workers, the 10 M model if listed (else the largest).
  const sumN = Math.max(...o.workers);
  const sumP = o.params.includes(10) ? 10 : Math.max(...o.params);
  const sm = models.get(sumP)!;
  o.log(`reduce: summation, ${o.shards} owner threads in parallel, ${sumN} ranks × ${(sm.total / 1e6).toFixed(2)} M parameters (ShardOwner.add vs TypedArray.set)`);
  const sumCfg: SumConfig = { worldSize: sumN, dLength: sm.d, gLength: sm.g, shards: o.shards, reps: o.sumReps ?? 3 };
  const sumRun = await runJsonChild<SumResult>([join(DIST_BENCH, 'reduce-sum-child.js'), JSON.stringify(sumCfg)], timeoutMs);
  if (!sumRun.result || sumRun.result.error !== undefined) throw new DistganError('DISTGAN_E_INTERNAL', `bench --suite reduce: summation measurement failed: ${sumRun.result?.error ?? sumRun.error ?? 'no result'}`);
  const sum = sumRun.result;
  const fmt = (x: number | null): string => (x === null ? '—' : x.toFixed(2));
  o.log(`  GB/s: memcpy ${fmt(sum.gbPerSecond.memcpy)}, ShardOwner.add ${fmt(sum.gbPerSecond.ownerAdd)} (${fmt(sum.shareOfMemcpy.ownerAdd)} of memcpy; its add loop alone ${fmt(sum.gbPerSecond.jsAdd)}, its inspection alone ${fmt(sum.gbPerSecond.jsInspect)}), wasm SIMD copy+add+inspect ${fmt(sum.gbPerSecond.wasmAddInspect)} (${fmt(sum.shareOfMemcpy.wasmAddInspect)})`);
  const loadEnd = loadavg();
  return {
    suite: 'reduce',
    started,
    machine: { cores: cpus().length, memoryGiB: round(totalmem() / 2 ** 30, 1), loadAverageStart: loadStart.map((x) => round(x, 2)), loadAverageEnd: loadEnd.map((x) => round(x, 2)) },
    steps: o.steps,
    warmup,
    shards: o.shards,
    simProcesses,
    maxPassGiB,
    model: 'dcgan (MNIST 28×28, no batch norm), width chosen per size',
    results,
    skipped,
    summation: { ...sum, workers: sumN, paramsTarget: sumP * 1e6, params: sm.total },
    sumShareOfMemcpy: sum.shareOfMemcpy.ownerAdd,
    sumShareOfMemcpyWorkers: sumN,
    sumShareOfMemcpyParams: sm.total,
  };
}
