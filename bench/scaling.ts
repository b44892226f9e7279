/**
 * `distgan bench --suite scaling`, in one invocation on one machine:
 *  - plain: a single-process loop over the same trainer, batch and backend
 *    (no coordinator, no sockets);
 *  - distgan with 1 worker at the same global batch;
 *  - distgan with 2 workers, each at that per-worker batch (global 2×);
 *  - the per-step gradient exchange time distgan measured (2 workers);
 *  - the same 1- and 2-worker runs with `--reduction sharded` (2 shard-owner
 *    threads), as `sharded` in the JSON;
 *  - the raw ZeroMQ transfer of the same bytes between processes;
 *  - PyTorch DistributedDataParallel (gloo, CPU) with 1 and 2 processes at the
 *    same per-process batch, one thread each (bench/torch_ddp.py), as `torch`
 *    in the JSON: `{available: false, reason}` where PyTorch cannot be
 *    imported, which does not fail the bench.
 * Every figure is steady-state (warm-up steps excluded). A failed run fails
 * the bench with the child's own error code and exit code. With `--backend
 * webgpu` the children get the project's software Vulkan when the machine
 * has no Vulkan of its own (vulkan-env.ts webgpuChildEnv).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_BIN, PACKAGE_ROOT } from '../src/shared/version.js';
import { DistganError } from '../src/shared/errors.js';
import { webgpuChildEnv } from '../src/shared/compute/vulkan-env.js';
import { childFailure, probeTorch, reasonFromStderr, runJsonChild, runJsonCommand } from './child.js';
import type { ComputeChildResult } from './compute-child.js';
import { measureRawTransfer } from './raw-transfer.js';
import { spawn } from 'node:child_process';

interface Summary {
  imagesPerSecond: number;
  exchangeSecondsPerStep?: number;
  steps: number;
}

async function launchRun(workers: number, batch: number, steps: number, backend: string, env: NodeJS.ProcessEnv, log: (l: string) => void, reduction = 'star'): Promise<Summary> {
  const out = await mkdtemp(join(tmpdir(), 'distgan-bench-'));
  try {
    const args = [CLI_BIN, 'launch', '--workers', String(workers), '--batch-size', String(batch), '--steps', String(steps), '--backend', backend, '--reduction', reduction, '--metrics-port', '0', '--sample-every', '0', '--checkpoint-every', '0', '--checksum-every', '1000000', '--log-format', 'plain', '--log-every', '1000', '--out', out];
    let err = '';
    const code = await new Promise<number>((resolve) => {
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => p.kill('SIGTERM'), 1_200_000);
      p.on('exit', (c) => {
        clearTimeout(timer);
        if (c !== 0) log(err.split('\n').slice(-5).join('\n'));
        resolve(c ?? 1);
      });
    });
    if (code !== 0) {
      const reason = reasonFromStderr(err);
      const what = `bench --suite scaling: distgan launch --workers ${workers} exited ${code}: ${reason.message}`;
      throw new DistganError(reason.code ?? 'DISTGAN_E_INTERNAL', what, { exitCode: reason.code === undefined ? 1 : code });
    }
    return JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as Summary;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** What bench/torch_ddp.py prints (or its error). */
interface DdpRun {
  imagesPerSecond?: number;
  secondsPerStep?: number;
  threadsPerProcess?: number;
  error?: string;
}

/**
 * PyTorch DDP over gloo with 1 and 2 processes, B samples each, 1 thread each
 * (a distgan wasm worker computes on one core), beside distgan's 1 and 2 workers.
 */
async function torchDdp(B: number, steps: number, distgan: { one: number; two: number }, log: (l: string) => void): Promise<Record<string, unknown>> {
  const probe = await probeTorch();
  if (!probe.available) {
    log(`scaling: PyTorch DDP skipped: ${probe.reason}`);
    return { available: false, reason: probe.reason };
  }
  const script = join(PACKAGE_ROOT, 'bench', 'torch_ddp.py');
  const run = async (procs: number): Promise<DdpRun> => {
    log(`scaling: PyTorch ${probe.version} DDP (gloo), ${procs} process(es) × batch ${B}, 1 thread each`);
    const r = await runJsonCommand<DdpRun>(probe.python, [script, '--procs', String(procs), '--batch', String(B), '--steps', String(steps), '--warmup', '2', '--threads', '1'], 1_800_000);
    const error = r.result?.error ?? r.error ?? (typeof r.result?.imagesPerSecond === 'number' ? undefined : 'no figure in its output');
    if (error !== undefined) {
      log(`  DDP ${procs}: ${error}`);
      return { error };
    }
    log(`  DDP ${procs}: ${r.result!.imagesPerSecond!.toFixed(1)} img/s (${r.result!.secondsPerStep!.toFixed(3)} s/step)`);
    return r.result!;
  };
  const one = await run(1);
  const two = await run(2);
  const ips = (r: DdpRun): number | null => (r.error === undefined && typeof r.imagesPerSecond === 'number' ? r.imagesPerSecond : null);
  const [i1, i2] = [ips(one), ips(two)];
  return {
    available: true,
    version: probe.version,
    python: probe.python,
    ddpBackend: 'gloo',
    perProcessBatch: B,
    threadsPerProcess: 1,
    oneProcessImagesPerSecond: i1,
    twoProcessImagesPerSecond: i2,
    twoProcessesOverOne: i1 !== null && i2 !== null ? i2 / i1 : null,
    ...(one.error !== undefined ? { oneProcessError: one.error } : {}),
    ...(two.error !== undefined ? { twoProcessError: two.error } : {}),
    distganOverTorch: { oneWorker: i1 !== null ? distgan.one / i1 : null, twoWorkers: i2 !== null ? distgan.two / i2 : null },
  };
}

export async function runScalingBench(o: {
  backend: string;
  perWorkerBatch: number;
  steps: number;
  /** Measure PyTorch DDP beside distgan (default true; reported unavailable without PyTorch). */
  torch?: boolean;
  log: (l: string) => void;
}): Promise<Record<string, unknown>> {
  const B = o.perWorkerBatch;
  const vk = o.backend === 'webgpu' ? webgpuChildEnv() : { env: process.env };
  if (vk.note !== undefined) o.log(`scaling: ${vk.note}`);
  o.log(`scaling: plain single-process loop at batch ${B}`);
  const plainRun = await runJsonChild<ComputeChildResult>([join(PACKAGE_ROOT, 'dist', 'bench', 'compute-child.js'), 'ours', String(B), '2', String(o.steps), '1', o.backend], 1_200_000, vk.env);
  const failure = childFailure(`bench --suite scaling --backend ${o.backend}: plain loop`, plainRun);
  if (failure !== undefined) throw failure;
  // childFailure is undefined only for a result without an error.
  const plainResult = plainRun.result!;
  const plain = plainResult.imagesPerSecond;
  o.log(`  plain: ${plain.toFixed(1)} img/s`);
  o.log(`scaling: distgan launch --workers 1 --batch-size ${B}`);
  const one = await launchRun(1, B, o.steps + 2, o.backend, vk.env, o.log);
  o.log(`  1 worker: ${one.imagesPerSecond.toFixed(1)} img/s`);
  o.log(`scaling: distgan launch --workers 2 --batch-size ${2 * B}`);
  const two = await launchRun(2, 2 * B, o.steps + 2, o.backend, vk.env, o.log);
  o.log(`  2 workers: ${two.imagesPerSecond.toFixed(1)} img/s, exchange ${(two.exchangeSecondsPerStep ?? NaN).toFixed(4)} s/step`);
  o.log(`scaling: distgan launch --reduction sharded --workers 1 --batch-size ${B}`);
  const oneSharded = await launchRun(1, B, o.steps + 2, o.backend, vk.env, o.log, 'sharded');
  o.log(`  1 worker (sharded): ${oneSharded.imagesPerSecond.toFixed(1)} img/s`);
  o.log(`scaling: distgan launch --reduction sharded --workers 2 --batch-size ${2 * B}`);
  const twoSharded = await launchRun(2, 2 * B, o.steps + 2, o.backend, vk.env, o.log, 'sharded');
  o.log(`  2 workers (sharded): ${twoSharded.imagesPerSecond.toFixed(1)} img/s, exchange ${(twoSharded.exchangeSecondsPerStep ?? NaN).toFixed(4)} s/step`);
  // DCGAN-MNIST gradient sizes: G 846,273 floats, D 212,865 (plus G's BN statistics as aux).
  const gBytes = (846_273 + 12_672) * 4;
  const dBytes = 212_865 * 4;
  o.log('scaling: raw ZeroMQ transfer of the same bytes, 2 dealer processes');
  const raw = await measureRawTransfer({ workers: 2, gBytes, dBytes, steps: 30, warmup: 5 });
  o.log(`  raw: ${raw.toFixed(4)} s/step`);
  const exchange = two.exchangeSecondsPerStep ?? NaN;
  const torch = (o.torch ?? true)
    ? await torchDdp(B, o.steps, { one: one.imagesPerSecond, two: two.imagesPerSecond }, o.log)
    : { skipped: '--no-torch' };
  return {
    suite: 'scaling',
    backend: plainResult.backend,
    perWorkerBatch: B,
    steps: o.steps,
    plainImagesPerSecond: plain,
    oneWorkerImagesPerSecond: one.imagesPerSecond,
    twoWorkerImagesPerSecond: two.imagesPerSecond,
    exchangeSecondsPerStep: exchange,
    rawTransferSecondsPerStep: raw,
    oneWorkerOverPlain: one.imagesPerSecond / plain,
    twoWorkersOverOne: two.imagesPerSecond / one.imagesPerSecond,
    exchangeOverRaw: exchange / raw,
    sharded: {
      shardOwners: 2,
      oneWorkerImagesPerSecond: oneSharded.imagesPerSecond,
      twoWorkerImagesPerSecond: twoSharded.imagesPerSecond,
      exchangeSecondsPerStep: twoSharded.exchangeSecondsPerStep ?? NaN,
      twoWorkersOverOne: twoSharded.imagesPerSecond / oneSharded.imagesPerSecond,
      twoWorkersOverStarOne: twoSharded.imagesPerSecond / one.imagesPerSecond,
      exchangeOverRaw: (twoSharded.exchangeSecondsPerStep ?? NaN) / raw,
    },
    torch,
  };
}
