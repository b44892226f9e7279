/**
 * Run configuration: every option distgan's training commands take, with its
 * unit and default, in one table. The CLI registers flags from this table,
 * hands the raw strings back to `resolveConfig`, which validates each value
 * (a ConfigError names the flag and the bad value), rejects unknown keys,
 * and returns a deep-frozen object that is passed down unchanged.
 */
import { availableParallelism } from 'node:os';
import { ConfigError } from './errors.js';

export type BackendRequest = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type LogFormat = 'auto' | 'bar' | 'plain' | 'json';
export type ModelKind = 'auto' | 'dcgan' | 'mlp';
/** What the coordinator does when a rank's gradient fails the averaging guard. */
export type BadGradientPolicy = 'fail' | 'skip-step' | 'drop-worker';
export const BAD_GRADIENT_POLICIES: readonly BadGradientPolicy[] = ['fail', 'skip-step', 'drop-worker'];

/** Options that define the maths of a run; they must match for an exact resume. */
export interface TrainingConfig {
  /** Absolute number of optimizer steps to reach (a resumed run continues up to this). */
  steps: number;
  /** Global batch size, split across workers. */
  batchSize: number;
  /** 'mnist' (embedded), 'ring8', 'grid25', or a prepared dataset directory. */
  dataset: string;
  model: ModelKind;
  /** Channel/width multiplier of the networks (1 = the reference DCGAN). */
  width: number;
  /** Batch normalisation in G. */
  batchNorm: boolean;
  latentDim: number;
  seed: number;
  lr: number;
  beta1: number;
  beta2: number;
  entropyWeight: number;
  labelSmoothing: number;
  instanceNoise: number;
  /** Random horizontal flips of real images. */
  flip: boolean;
}

/** Options about how a run executes and reports; they may change on resume. */
export interface RunConfig extends TrainingConfig {
  out: string;
  backend: BackendRequest;
  resume: string | undefined;
  resumeLatestValid: boolean;
  onBadGradient: BadGradientPolicy;
  gradNormFactor: number;
  gradNormMax: number;
  sampleEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  checksumEvery: number;
  logEvery: number;
  joinTimeout: number;
  stepTimeout: number;
  metricsHost: string;
  metricsPort: number;
  logFormat: LogFormat;
  dryRun: boolean;
}

type Parser<T> = (raw: unknown, flag: string) => T;

export interface OptionDef<K extends keyof RunConfig = keyof RunConfig> {
  key: K;
  /** Commander flag syntax. */
  flags: string;
  /** Meaning, unit and default, shown in --help. */
  description: string;
  parse: Parser<RunConfig[K]>;
  /** Default; a function when it depends on the moment (run folder name). */
  default: RunConfig[K] | (() => RunConfig[K]);
  /** Part of TrainingConfig: must match a checkpoint being resumed. */
  training: boolean;
}

const bad = (flag: string, raw: unknown, want: string): ConfigError =>
  new ConfigError(`${flag}: ${JSON.stringify(raw)} is not ${want}`);

export const int = (min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> => (raw, flag) => {
  const s = String(raw).trim();
  const n = typeof raw === 'number' ? raw : /^-?\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw bad(flag, raw, `an integer in [${min}, ${max}]`);
  return n;
};

export const num = (min: number, max: number, opts: { exclusiveMin?: boolean } = {}): Parser<number> => (raw, flag) => {
  const n = typeof raw === 'number' ? raw : String(raw).trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n) || n > max || (opts.exclusiveMin ? n <= min : n < min)) {
    throw bad(flag, raw, `a number in ${opts.exclusiveMin ? '(' : '['}${min}, ${max}]`);
  }
  return n;
};

export const oneOf = <T extends string>(values: readonly T[]): Parser<T> => (raw, flag) => {
  if (!values.includes(raw as T)) throw bad(flag, raw, `one of ${values.join(', ')}`);
  return raw as T;
};

const str: Parser<string> = (raw, flag) => {
  if (typeof raw !== 'string' || raw.length === 0) throw bad(flag, raw, 'a non-empty string');
  return raw;
};
const optStr: Parser<string | undefined> = (raw, flag) => (raw === undefined ? undefined : str(raw, flag));
const bool: Parser<boolean> = (raw, flag) => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw bad(flag, raw, 'true or false');
};

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

export const BACKENDS: readonly BackendRequest[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

/** The table. Flag names are stable API: docs, deploy manifests and tests refer to them. */
export const RUN_OPTIONS: readonly OptionDef[] = [
  { key: 'steps', flags: '--steps <n>', description: 'absolute number of optimizer steps to train to (default 2000)', parse: int(1), default: 2000, training: false },
  { key: 'batchSize', flags: '--batch-size <n>', description: 'global batch size in samples, split across workers (default 64)', parse: int(1, 65536), default: 64, training: true },
  { key: 'dataset', flags: '--dataset <name|dir>', description: "'mnist' (embedded, default), 'ring8', 'grid25', or a directory made by `distgan prepare`", parse: str, default: 'mnist', training: true },
  { key: 'model', flags: '--model <kind>', description: "'auto' (default: dcgan for images, mlp for points), 'dcgan' or 'mlp'", parse: oneOf(['auto', 'dcgan', 'mlp'] as const), default: 'auto', training: true },
  { key: 'width', flags: '--width <x>', description: 'channel/width multiplier of G and D (default 1 = the reference DCGAN)', parse: num(0, 16, { exclusiveMin: true }), default: 1, training: true },
  { key: 'batchNorm', flags: '--no-batch-norm', description: 'train G without batch normalisation (default: with)', parse: bool, default: true, training: true },
  { key: 'latentDim', flags: '--latent-dim <n>', description: 'size of z ~ N(0, I) (default 100)', parse: int(1, 4096), default: 100, training: true },
  { key: 'seed', flags: '--seed <n>', description: 'seed for initial weights, data order and noise (default 1)', parse: int(0, 2 ** 31 - 1), default: 1, training: true },
  { key: 'lr', flags: '--lr <rate>', description: 'Adam learning rate for G and D (default 0.0002)', parse: num(0, 1, { exclusiveMin: true }), default: 2e-4, training: true },
  { key: 'beta1', flags: '--beta1 <b>', description: 'Adam β1 (default 0.5)', parse: num(0, 0.999999), default: 0.5, training: true },
  { key: 'beta2', flags: '--beta2 <b>', description: 'Adam β2 (default 0.999)', parse: num(0, 0.999999), default: 0.999, training: true },
  { key: 'entropyWeight', flags: '--entropy-weight <λ>', description: 'λ of the λ·H[D] entropy term added to the G loss (default 0 = off)', parse: num(0, 100), default: 0, training: true },
  { key: 'labelSmoothing', flags: '--label-smoothing <s>', description: 'one-sided label smoothing: real target 1 − s (default 0 = off)', parse: num(0, 0.5), default: 0, training: true },
  { key: 'instanceNoise', flags: '--instance-noise <σ>', description: 'σ of Gaussian noise added to D inputs, in data units (default 0 = off)', parse: num(0, 10), default: 0, training: true },
  { key: 'flip', flags: '--flip', description: 'random horizontal flips of real images (default off)', parse: bool, default: false, training: true },
  { key: 'out', flags: '--out <dir>', description: 'run folder (default runs/<UTC timestamp>; on --resume, the resumed run folder)', parse: str, default: () => `runs/${timestamp()}`, training: false },
  { key: 'backend', flags: '--backend <name>', description: 'compute backend: auto (default: tensorflow → webgpu on hardware → wasm), tensorflow, webgpu, wasm, cpu', parse: oneOf(BACKENDS), default: 'auto', training: false },
  { key: 'resume', flags: '--resume <path>', description: 'continue exactly from a run folder (its latest checkpoint) or a checkpoint file (default: none, a fresh run)', parse: optStr, default: undefined, training: false },
  { key: 'resumeLatestValid', flags: '--resume-latest-valid', description: 'with --resume <run folder>: continue from the newest checkpoint that verifies, skipping newer corrupt ones (default off: a corrupt newest checkpoint is an error)', parse: bool, default: false, training: false },
  { key: 'onBadGradient', flags: '--on-bad-gradient <policy>', description: "when a rank's gradient is non-finite or its norm fails the guard: fail (default: checkpoint the last good step, exit naming the rank), skip-step (discard that update on every replica and go on), drop-worker (needs elastic membership, not available yet)", parse: oneOf(BAD_GRADIENT_POLICIES), default: 'fail', training: false },
  { key: 'gradNormFactor', flags: '--grad-norm-factor <x>', description: "guard: refuse a rank's gradient whose norm (scaled to the full batch) exceeds x times the median of the last 64 accepted ones, once 8 are known (default 1000; 0 = no history check)", parse: num(0, 1e12), default: 1000, training: false },
  { key: 'gradNormMax', flags: '--grad-norm-max <n>', description: "guard: refuse a rank's gradient whose L2 norm (scaled to the full batch) exceeds n, from the first step on (default 1e6; 0 = no limit)", parse: num(0, 1e30), default: 1e6, training: false },
  { key: 'sampleEvery', flags: '--sample-every <steps>', description: 'write a sample grid every N steps (default 100; 0 = only at the end)', parse: int(0), default: 100, training: false },
  { key: 'checkpointEvery', flags: '--checkpoint-every <steps>', description: 'write a checkpoint every N steps (default 500; 0 = only at the end)', parse: int(0), default: 500, training: false },
  { key: 'keepCheckpoints', flags: '--keep-checkpoints <n>', description: 'how many recent checkpoints to keep (default 3)', parse: int(1, 1000), default: 3, training: false },
  { key: 'checksumEvery', flags: '--checksum-every <steps>', description: 'compare replica weight checksums every K steps (default 50)', parse: int(1), default: 50, training: false },
  { key: 'logEvery', flags: '--log-every <steps>', description: 'progress line every N steps off a TTY (default 10)', parse: int(1), default: 10, training: false },
  { key: 'joinTimeout', flags: '--join-timeout <s>', description: 'seconds to wait for all workers to join and build the model (default 180)', parse: num(0, 86400, { exclusiveMin: true }), default: 180, training: false },
  { key: 'stepTimeout', flags: '--step-timeout <s>', description: 'seconds a worker may take to answer one phase of a step before it is declared lost (default 120)', parse: num(0, 86400, { exclusiveMin: true }), default: 120, training: false },
  { key: 'metricsHost', flags: '--metrics-host <host>', description: 'address for /metrics and the status page (default 127.0.0.1)', parse: str, default: '127.0.0.1', training: false },
  { key: 'metricsPort', flags: '--metrics-port <port>', description: 'port for /metrics and the status page (default 9464; 0 = off)', parse: int(0, 65535), default: 9464, training: false },
  { key: 'logFormat', flags: '--log-format <fmt>', description: 'auto (default: bar on a TTY, plain lines otherwise), bar, plain or json', parse: oneOf(['auto', 'bar', 'plain', 'json'] as const), default: 'auto', training: false },
  { key: 'dryRun', flags: '--dry-run', description: 'print the resolved configuration as JSON and exit without writing anything (default off)', parse: bool, default: false, training: false },
];

export const TRAINING_KEYS = RUN_OPTIONS.filter((o) => o.training).map((o) => o.key) as (keyof TrainingConfig)[];

function flagName(def: OptionDef): string {
  return def.flags.split(/[ ,]/)[0]!.replace(/^--no-/, '--');
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/**
 * Validates raw option values (strings from the CLI, or values from a JSON
 * config) into a frozen RunConfig. Keys absent from `raw` take their defaults;
 * unknown keys are refused.
 */
export function resolveConfig(raw: Record<string, unknown>, base: Partial<RunConfig> = {}): Readonly<RunConfig> {
  const known = new Set<string>(RUN_OPTIONS.map((o) => o.key));
  for (const k of Object.keys(raw)) {
    if (!known.has(k)) throw new ConfigError(`unknown option '${k}'`);
  }
  const out: Record<string, unknown> = {};
  for (const def of RUN_OPTIONS) {
    const flag = flagName(def);
    if (raw[def.key] !== undefined) out[def.key] = def.parse(raw[def.key], flag);
    else if (base[def.key] !== undefined) out[def.key] = def.parse(base[def.key], flag);
    else out[def.key] = typeof def.default === 'function' ? (def.default as () => unknown)() : def.default;
  }
  const cfg = out as unknown as RunConfig;
  if (cfg.batchSize < 1) throw new ConfigError('--batch-size must be at least 1');
  if (cfg.onBadGradient === 'drop-worker') {
    throw new ConfigError("--on-bad-gradient drop-worker needs elastic membership (a run that carries on with fewer workers), which this distgan does not have yet; use fail or skip-step");
  }
  return deepFreeze(cfg);
}

/** Picks the TrainingConfig part, e.g. to store in a checkpoint. */
export function trainingPart(cfg: TrainingConfig): TrainingConfig {
  const o: Record<string, unknown> = {};
  for (const k of TRAINING_KEYS) o[k] = cfg[k];
  return o as unknown as TrainingConfig;
}

/** The flag of a config key, for error messages ("--batch-size"). */
export function flagOf(key: keyof RunConfig): string {
  const def = RUN_OPTIONS.find((o) => o.key === key);
  return def ? flagName(def) : key;
}

/** Parses "0,1,3" into GPU indices. */
export function parseGpuList(raw: string, flag = '--gpus'): number[] {
  const parts = raw.split(',').map((s) => s.trim());
  const ids = parts.map((p) => int(0, 1023)(p, flag));
  if (ids.length === 0) throw new ConfigError(`${flag}: empty GPU list`);
  if (new Set(ids).size !== ids.length) throw new ConfigError(`${flag}: ${JSON.stringify(raw)} lists a GPU twice`);
  return ids;
}

/**
 * The CUDA_VISIBLE_DEVICES entry for local GPU index `gpu`: indices count within
 * the launcher's own CUDA_VISIBLE_DEVICES when it has one, as torchrun's local
 * ranks do.
 */
export function visibleDeviceFor(gpu: number, inherited: string | undefined): string {
  const list = inherited?.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (!list || list.length === 0) return String(gpu);
  if (gpu >= list.length) throw new ConfigError(`--gpus ${gpu}: only ${list.length} GPUs are visible (CUDA_VISIBLE_DEVICES=${inherited})`);
  return list[gpu]!;
}

/** Default worker count with no GPU: one per core (wasm threads do not work in Node). */
export function defaultWorkerCount(): number {
  return Math.max(1, availableParallelism());
}
