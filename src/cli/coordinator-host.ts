/**
 * Everything around a Coordinator that `launch` and `coordinator` share:
 * the run folder, the coordinator's own backend and mirror, observers
 * (progress, the run log files log.txt and stats.jsonl, Prometheus, status
 * page) and the HTTP server.
 */
import { mkdir, stat, readdir } from 'node:fs/promises';
import { removeStaleTempFiles, writeJsonAtomic } from '../shared/atomic-write.js';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import type { Router } from 'zeromq';
import type { RunConfig } from '../shared/config.js';
import type { BackendRequest } from '../shared/compute/backends.js';
import { ConfigError } from '../shared/errors.js';
import type { Checkpoint } from '../shared/checkpoint.js';
import { initBackend } from '../shared/compute/backend.js';
import { openDataset } from '../shared/data/open.js';
import { buildRun } from '../shared/run.js';
import { VERSION } from '../shared/version.js';
import { Coordinator } from '../coordinator/coordinator.js';
import type { RunObserver } from '../coordinator/observer.js';
import { ProgressObserver } from '../coordinator/progress.js';
import { PrometheusObserver } from '../coordinator/metrics.js';
import { StatusObserver } from '../coordinator/status-page.js';
import { LineAppender, RUN_LOG_FILE_NAME, STATS_FILE_NAME, StatsFileObserver } from '../coordinator/stats-file.js';
import { startHttpServer } from '../coordinator/http-server.js';
import { readEnv } from './env.js';

export interface HostedRun {
  coordinator: Coordinator;
  endpoint: string;
  metricsUrl?: string;
  /** Prints a line of this run's output (a worker's, the launcher's) in the run's log format; `source` names who said it. */
  printLine(line: string, source?: string): void;
  close(): Promise<void>;
}

/**
 * The coordinator needs tensors only for its mirror (sample grids, export);
 * it never competes with workers for a GPU, so it computes on wasm unless
 * the user asked for the cpu reference or native TensorFlow.
 */
function coordinatorBackend(req: BackendRequest): BackendRequest {
  return req === 'cpu' || req === 'tensorflow' ? req : 'wasm';
}

/** Refuses to train into a folder that already holds another run's checkpoints (unless resuming it). */
async function prepareRunFolder(out: string, resuming: boolean): Promise<void> {
  try {
    const st = await stat(out);
    if (!st.isDirectory()) throw new ConfigError(`--out ${out} exists and is not a directory`);
    if (!resuming) {
      const ck = await readdir(join(out, 'checkpoints')).catch(() => [] as string[]);
      if (ck.some((f) => f.endsWith('.ckpt'))) {
        throw new ConfigError(`--out ${out} already holds a run with checkpoints; pick a new folder or continue it with --resume ${out}`);
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await mkdir(join(out, 'samples'), { recursive: true });
  await mkdir(join(out, 'checkpoints'), { recursive: true });
}

export async function hostRun(opts: {
  config: Readonly<RunConfig>;
  resumeFrom?: Checkpoint;
  worldSize: number;
  bind: string;
  /** The flag the bind address came from, for errors (default --bind). */
  bindFlag?: string;
  log: (line: string) => void;
  configureSocket?: (router: Router) => Promise<void>;
  /** The CURVE settings as data, for the shard-owner threads of a sharded reduction. */
  curve?: { publicKey: string; secretKey: string };
  extraObservers?: RunObserver[];
}): Promise<HostedRun> {
  const { config } = opts;
  const out = resolve(config.out);
  const env = readEnv();
  // --log-format json is one JSON object per line on stdout (for jq); the
  // other formats are for people and go to stderr, keeping stdout for results.
  const json = config.logFormat === 'json';
  const stream = json ? process.stdout : process.stderr;
  const progress = new ProgressObserver({ format: config.logFormat, stream, isTTY: Boolean(stream.isTTY) && !env.ci, every: config.logEvery });
  // The run log in the run folder, opened once the folder exists (a refused start writes nothing):
  // log.txt gets the plain-format progress and every printed line with a timestamp, stats.jsonl the
  // machine-readable record (`distgan report`). Neither can stop training: a write error is
  // reported once and that file goes quiet.
  const logFile = new LineAppender(join(out, RUN_LOG_FILE_NAME), { onError: (m) => log(`run log: ${m}`) });
  const fileProgress = new ProgressObserver({ format: 'plain', stream: logFile.asWritable(), every: config.logEvery });
  const stamp = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  // Every line of this run, workers' included, goes through the progress observer:
  // above the bar, as is in plain mode, as a {"event":"log"} object in json mode.
  const printLine = (line: string, source?: string): void => {
    progress.printLine(line, source);
    fileProgress.printLine(`${stamp()} ${source === undefined ? '' : `[${source}] `}${line}`);
  };
  const log = (line: string): void => printLine(`distgan: ${line}`);
  // Everything that can reject bad input runs before the run folder is created.
  const backend = await initBackend(coordinatorBackend(config.backend), { log: () => {} });
  log(`the coordinator's own model copy (sample grids, export) runs on ${backend.name}; workers choose theirs with --backend ${config.backend}`);
  const dataset = await openDataset(config.dataset, { flip: false, seed: config.seed });
  const runId = opts.resumeFrom?.header.runId ?? randomUUID();
  const run = buildRun(config, dataset, { runId, backend: backend.name, stepTimeout: config.stepTimeout });
  if (opts.resumeFrom && opts.resumeFrom.header.modelFingerprint !== run.wire.modelFingerprint) {
    throw new ConfigError(`--resume: the checkpoint's model fingerprint differs from the one this distgan builds from its config`);
  }
  if (opts.resumeFrom && opts.resumeFrom.header.datasetFingerprint !== run.wire.datasetFingerprint) {
    throw new ConfigError(`--resume: the dataset ${config.dataset} is not the data the checkpoint was trained on (fingerprint differs)`);
  }

  const statsFile = new StatsFileObserver({ path: join(out, STATS_FILE_NAME), every: config.logEvery, config: { ...config, out, worldSize: opts.worldSize, version: VERSION }, log });
  const observers: RunObserver[] = [progress, fileProgress, statsFile];
  const registry = config.metricsPort !== 0 ? new Registry() : undefined;
  const status = registry ? new StatusObserver() : undefined;
  if (registry && status) observers.push(new PrometheusObserver(registry), status);
  observers.push(...(opts.extraObservers ?? []));

  // Validation that needs the world size (batch split) and both listening
  // addresses comes before the run folder exists: a refused start leaves nothing behind.
  const coordinator = new Coordinator({
    config,
    worldSize: opts.worldSize,
    bind: opts.bind,
    ...(opts.bindFlag ? { bindFlag: opts.bindFlag } : {}),
    run,
    ...(opts.resumeFrom ? { resumeFrom: opts.resumeFrom } : {}),
    observers,
    version: VERSION,
    log,
    ...(opts.configureSocket ? { configureSocket: opts.configureSocket } : {}),
    ...(opts.curve ? { curve: opts.curve } : {}),
  });
  let server: { url: string; close(): Promise<void> } | undefined;
  let endpoint: string;
  try {
    endpoint = await coordinator.bind();
    if (registry && status) {
      server = await startHttpServer({ host: config.metricsHost, port: config.metricsPort, registry, status, onError: (e) => log(`status server: ${String(e)}`) });
    }
    await prepareRunFolder(out, opts.resumeFrom !== undefined);
    const removed = await removeStaleTempFiles(join(out, 'checkpoints'));
    if (removed.length > 0) log(`removed ${removed.length} temporary file(s) left by an interrupted checkpoint write: ${removed.join(', ')}`);
    await writeJsonAtomic(join(out, 'config.json'), { ...config, out, worldSize: opts.worldSize, version: VERSION });
    logFile.open();
  } catch (e) {
    await coordinator.close();
    await server?.close();
    run.trainer.dispose();
    await dataset.close();
    throw e;
  }
  if (server) log(`metrics and status page at ${server.url}`);
  return {
    coordinator,
    endpoint,
    ...(server ? { metricsUrl: server.url } : {}),
    printLine,
    async close() {
      await coordinator.close();
      await server?.close();
      for (const o of observers) await o.close?.();
      await logFile.close();
      run.trainer.dispose();
      await dataset.close();
    },
  };
}
