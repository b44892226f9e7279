/**
 * Run configuration: every option distgan's training commands take, with its
 * unit and default, in one table. The CLI registers flags from this table,
 * hands the raw strings back to `resolveConfig`, which validates each value
 * (a ConfigError names the flag and the bad value), rejects unknown keys,
 * and returns a deep-frozen object that is passed down unchanged.
 *
 * A value may come from four layers, lowest to highest (docs/configuration.md):
 *
 *   default < config file (--config) < environment (DISTGAN_<FLAG>) < flag
 *
 * `resolveLayers` takes the layers, validates every value given in any of
 * them (an error names the flag, the variable or the file and key), keeps the
 * highest, and reports where each value came from for `--dry-run`.
 */
import { ConfigError } from './errors.js';
import { findModel, modelDefinitions, modelKinds } from './models/registry.js';
import { BACKEND_REQUESTS, type BackendRequest } from './compute/backends.js';

export type LogFormat = 'auto' | 'bar' | 'plain' | 'json';
/** 'auto' or a kind in the model registry (models/registry.ts: 'dcgan', 'mlp', …). */
export type ModelKind = string;
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
  /** How gradients are averaged: star (the coordinator sums) or sharded (K shard owners sum). */
  reduction: 'star' | 'sharded';
  /** Shard owners of the sharded reduction, as threads of the coordinator. */
  reduceShards: number;
  /** Reducer processes (`distgan reducer`) that own the shards instead of threads; 0 = threads. */
  reducers: number;
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

/** `--model`: 'auto' or a registered kind, looked up when parsed (so kinds registered at run time count). */
const modelKind: Parser<ModelKind> = (raw, flag) => {
  if (raw !== 'auto' && findModel(raw) === undefined) throw bad(flag, raw, `one of ${['auto', ...modelKinds()].join(', ')}`);
  return raw as ModelKind;
};
/** "'auto' (default: dcgan for images, mlp for points), 'dcgan' or 'mlp'", from the registry. */
const MODEL_DESCRIPTION =
  `'auto' (default: ${modelDefinitions().map((d) => `${d.kind} for ${d.autoFor}`).join(', ')}), ` +
  modelKinds().map((k) => `'${k}'`).join(', ').replace(/, ([^,]*)$/, ' or $1');

/** The table. Flag names are stable API: docs, deploy manifests and tests refer to them. */
export const RUN_OPTIONS: readonly OptionDef[] = [
  { key: 'steps', flags: '--steps <n>', description: 'absolute number of optimizer steps to train to (default 2000)', parse: int(1), default: 2000, training: false },
  { key: 'batchSize', flags: '--batch-size <n>', description: 'global batch size in samples, split across workers (default 64)', parse: int(1, 65536), default: 64, training: true },
  { key: 'dataset', flags: '--dataset <name|dir>', description: "'mnist' (embedded, default), 'ring8', 'grid25', or a directory made by `distgan prepare`", parse: str, default: 'mnist', training: true },
  { key: 'model', flags: '--model <kind>', description: MODEL_DESCRIPTION, parse: modelKind, default: 'auto', training: true },
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
  { key: 'backend', flags: '--backend <name>', description: 'compute backend: auto (default: tensorflow → webgpu on hardware → wasm), tensorflow, webgpu, wasm, cpu', parse: oneOf(BACKEND_REQUESTS), default: 'auto', training: false },
  { key: 'resume', flags: '--resume <path>', description: 'continue exactly from a run folder (its latest checkpoint) or a checkpoint file (default: none, a fresh run)', parse: optStr, default: undefined, training: false },
  { key: 'resumeLatestValid', flags: '--resume-latest-valid', description: 'with --resume <run folder>: continue from the newest checkpoint that verifies, skipping newer corrupt ones (default off: a corrupt newest checkpoint is an error)', parse: bool, default: false, training: false },
  { key: 'onBadGradient', flags: '--on-bad-gradient <policy>', description: "when a rank's gradient is non-finite or its norm fails the guard: fail (default: checkpoint the last good step, exit naming the rank), skip-step (discard that update on every replica and go on), drop-worker (needs elastic membership, not available yet)", parse: oneOf(BAD_GRADIENT_POLICIES), default: 'fail', training: false },
  { key: 'gradNormFactor', flags: '--grad-norm-factor <x>', description: "guard: refuse a rank's gradient whose norm (scaled to the full batch) exceeds x times the median of the last 64 accepted ones, once 8 are known (default 1000; 0 = no history check)", parse: num(0, 1e12), default: 1000, training: false },
  { key: 'gradNormMax', flags: '--grad-norm-max <n>', description: "guard: refuse a rank's gradient whose L2 norm (scaled to the full batch) exceeds n, from the first step on (default 1e6; 0 = no limit)", parse: num(0, 1e30), default: 1e6, training: false },
  { key: 'reduction', flags: '--reduction <kind>', description: 'how gradients are averaged: star (default: every gradient goes to the coordinator, which sums it) or sharded (each worker sends shard k of its gradient to shard owner k, a thread of the coordinator; same bits as star)', parse: oneOf(['star', 'sharded'] as const), default: 'star', training: false },
  { key: 'reduceShards', flags: '--reduce-shards <k>', description: 'shard owners of --reduction sharded, each a thread of the coordinator with its own socket (default 2)', parse: int(1, 64), default: 2, training: false },
  { key: 'reducers', flags: '--reducers <n>', description: 'with --reduction sharded: n `distgan reducer` processes own the shards instead of threads (one per worker host, as BytePS places them; launch starts them locally); the coordinator waits for them up to --join-timeout (default 0 = threads)', parse: int(0, 1024), default: 0, training: false },
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

// ---------------------------------------------------------------- layers

/**
 * Where a value came from, as `--dry-run` prints it: `default`,
 * `file:<path>` (a --config file), `env:<NAME>`, `flag:<--flag>`, or
 * `checkpoint:<path>` (training options of a --resume).
 */
export type ValueSource = string;

/** One value of a layer, as written (a string from a flag or variable, a typed value from a file). */
export interface RawValue {
  value: unknown;
  source: ValueSource;
}

/** The values one layer gives, by RunConfig key. */
export type ConfigLayer = Partial<Record<keyof RunConfig, RawValue>>;

export const ENV_PREFIX = 'DISTGAN_';

/** True for a commander flag that takes no value (`--flip`, `--no-batch-norm`). */
export function isBooleanFlag(flags: string): boolean {
  return !/[<[]/.test(flags);
}

/**
 * The environment variable of a flag: DISTGAN_ and the long flag, upper-cased,
 * dashes as underscores (--batch-size → DISTGAN_BATCH_SIZE). A negated flag is
 * named after what it turns off, so the variable holds the option's value:
 * --no-batch-norm → DISTGAN_BATCH_NORM, and DISTGAN_BATCH_NORM=0 means --no-batch-norm.
 */
export function envNameOf(flags: string): string {
  const long = flags.split(/[ ,]+/).find((s) => s.startsWith('--'));
  if (long === undefined) throw new Error(`no long flag in ${JSON.stringify(flags)}`);
  return ENV_PREFIX + long.replace(/^--(no-)?/, '').replace(/-/g, '_').toUpperCase();
}

const ENV_TRUE = ['1', 'true', 'yes', 'on'];
const ENV_FALSE = ['0', 'false', 'no', 'off'];

/** A boolean variable: 1/true/yes/on or 0/false/no/off, any case. */
export function envBool(raw: string, name: string): boolean {
  const s = raw.trim().toLowerCase();
  if (ENV_TRUE.includes(s)) return true;
  if (ENV_FALSE.includes(s)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean: use 1/true/yes/on or 0/false/no/off`);
}

/** A variable's value, or undefined when it is unset or empty (an empty variable counts as unset). */
export function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v;
}

/**
 * The DISTGAN_ variable of one option, as a raw value (booleans already
 * converted), or undefined when unset. A DISTGAN_NO_<X> variable for a
 * negated flag is refused rather than silently ignored.
 */
export function envOption(flags: string, env: NodeJS.ProcessEnv): RawValue | undefined {
  const name = envNameOf(flags);
  if (/^--no-/.test(flags)) {
    const wrong = ENV_PREFIX + 'NO_' + name.slice(ENV_PREFIX.length);
    if (envValue(env, wrong) !== undefined) {
      throw new ConfigError(`${wrong} is not read: variables are named after the option, not its --no- flag; set ${name}=0 for ${flags.split(/[ ,]/)[0]}`);
    }
  }
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  return { value: isBooleanFlag(flags) ? envBool(raw, name) : raw, source: `env:${name}` };
}

/** The environment layer: every RUN_OPTIONS flag's DISTGAN_ variable that is set. */
export function envLayer(env: NodeJS.ProcessEnv): ConfigLayer {
  const layer: ConfigLayer = {};
  for (const def of RUN_OPTIONS) {
    const v = envOption(def.flags, env);
    if (v) layer[def.key] = v;
  }
  return layer;
}

/** How an error names a value from `source`: the flag, the variable, or the key and its file. */
export function labelOf(key: string, source: ValueSource): string {
  const i = source.indexOf(':');
  const kind = i < 0 ? source : source.slice(0, i);
  const rest = i < 0 ? '' : source.slice(i + 1);
  if (kind === 'flag' || kind === 'env') return rest;
  if (kind === 'file') return `${key} (${rest})`;
  if (kind === 'checkpoint') return `the checkpoint's ${key}`;
  return key;
}

export interface ResolvedConfig {
  config: Readonly<RunConfig>;
  /** Where each value came from (ValueSource). */
  sources: Readonly<Record<keyof RunConfig, ValueSource>>;
}

/**
 * Resolves layers given lowest first (file, environment, flags): every value
 * any layer gives is validated, the highest one is kept, absent keys take
 * their defaults. Unknown keys are refused.
 */
export function resolveLayers(layers: readonly ConfigLayer[]): ResolvedConfig {
  const known = new Set<string>(RUN_OPTIONS.map((o) => o.key));
  const out: Record<string, unknown> = {};
  const sources: Record<string, ValueSource> = {};
  for (const layer of layers) {
    for (const k of Object.keys(layer)) {
      if (!known.has(k)) throw new ConfigError(`unknown option '${k}'`);
    }
  }
  for (const def of RUN_OPTIONS) {
    for (const layer of layers) {
      const v = layer[def.key];
      if (v === undefined || v.value === undefined) continue;
      out[def.key] = def.parse(v.value, labelOf(def.key, v.source));
      sources[def.key] = v.source;
    }
    if (!(def.key in out)) {
      out[def.key] = typeof def.default === 'function' ? (def.default as () => unknown)() : def.default;
      sources[def.key] = 'default';
    }
  }
  const cfg = out as unknown as RunConfig;
  if (cfg.batchSize < 1) throw new ConfigError('--batch-size must be at least 1');
  if (cfg.reducers > 0 && cfg.reduction !== 'sharded') {
    throw new ConfigError(`${labelOf('reducers', sources.reducers!)} needs --reduction sharded (reducers own the shards of a sharded reduction)`);
  }
  if (cfg.onBadGradient === 'drop-worker') {
    throw new ConfigError(`${labelOf('onBadGradient', sources.onBadGradient!)} drop-worker needs elastic membership (a run that carries on with fewer workers), which this distgan does not have yet; use fail or skip-step`);
  }
  return { config: deepFreeze(cfg), sources: deepFreeze(sources as Record<keyof RunConfig, ValueSource>) };
}

// ---------------------------------------------------------------- config files

/** Keys a run's config.json holds beside the options (written by the coordinator host). */
export const RECORD_KEYS = ['worldSize', 'version'] as const;

/** Options that describe one invocation, not a run: a config file's value is ignored. */
const INVOCATION_KEYS: readonly (keyof RunConfig)[] = ['resume', 'resumeLatestValid', 'dryRun'];

/** A --config file, validated. */
export interface ConfigFile {
  path: string;
  layer: ConfigLayer;
  /** The run's world size, when the file records one (a run's config.json does). */
  worldSize?: number;
  /** Lines to tell the user: keys ignored, a different distgan version. */
  notes: string[];
}

/** A hint for a key written as a flag or in snake case ('batch-size' → 'batchSize'). */
function didYouMean(key: string): string {
  const norm = (s: string): string => s.replace(/^-+/, '').replace(/^no[-_]/, '').replace(/[-_]/g, '').toLowerCase();
  const extra: readonly string[] = RECORD_KEYS;
  const hit = [...RUN_OPTIONS.map((o) => o.key as string), ...extra].find((k) => norm(k) === norm(key));
  return hit ? ` (did you mean '${hit}'? keys are spelled as in a run's config.json)` : '';
}

/**
 * Validates the parsed contents of a --config file (JSON or YAML): the keys of
 * RunConfig plus a run record's `worldSize` and `version`. Every value is
 * checked here, so a bad file is an error even where a flag overrides it.
 *
 * - `version` differing from `thisVersion` → a note (same options, possibly different maths).
 * - `out` → used, except in a run record (a file with `version`, as every
 *   config.json distgan writes has): that names the recorded run's folder,
 *   which holds its checkpoints, so it is ignored with a note.
 * - `resume`, `resumeLatestValid`, `dryRun` → ignored (a note when set): they
 *   describe one invocation, not the run.
 * - anything else → ConfigError naming the key and the file.
 */
export function parseConfigFile(contents: unknown, path: string, thisVersion: string): ConfigFile {
  if (contents === null || typeof contents !== 'object' || Array.isArray(contents)) {
    const kind = contents === null ? 'nothing' : Array.isArray(contents) ? 'a list' : `a ${typeof contents}`;
    throw new ConfigError(`${path}: a config file holds one mapping of option names to values (like a run's config.json), not ${kind}`);
  }
  const obj = contents as Record<string, unknown>;
  const file: ConfigFile = { path, layer: {}, notes: [] };
  const isRecord = obj.version !== undefined;
  const source: ValueSource = `file:${path}`;
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'version') {
      if (typeof value !== 'string') throw new ConfigError(`version (${path}): ${JSON.stringify(value)} is not a version string`);
      if (value !== thisVersion) file.notes.push(`${path} was written by distgan ${value}, this is ${thisVersion}: the same options may not train bit for bit the same`);
      continue;
    }
    if (key === 'worldSize') {
      file.worldSize = int(1, 4096)(value, `worldSize (${path})`);
      continue;
    }
    const def = RUN_OPTIONS.find((o) => o.key === key);
    if (!def) throw new ConfigError(`unknown key '${key}' in ${path}${didYouMean(key)}`);
    if (INVOCATION_KEYS.includes(def.key)) {
      if (value !== undefined && value !== null && value !== false) file.notes.push(`${key} in ${path} is ignored: it describes one invocation, not the run; give ${flagName(def)} on the command line`);
      continue;
    }
    def.parse(value, labelOf(key, source));
    if (key === 'out' && isRecord) {
      file.notes.push(`${path} records a run that wrote to ${String(value)}; that folder is not reused (give --out, else a new runs/<timestamp> folder is made)`);
      continue;
    }
    file.layer[def.key] = { value, source };
  }
  return file;
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
 * config) into a frozen RunConfig. Keys absent from `raw` take their value
 * from `base`, else their defaults; unknown keys are refused. Errors name the
 * flag. The CLI uses resolveLayers, which also knows files and variables.
 */
export function resolveConfig(raw: Record<string, unknown>, base: Partial<RunConfig> = {}): Readonly<RunConfig> {
  const asLayer = (values: Record<string, unknown>): ConfigLayer => {
    const layer: Record<string, RawValue> = {};
    for (const [k, value] of Object.entries(values)) {
      const def = RUN_OPTIONS.find((o) => o.key === k);
      layer[k] = { value, source: def ? `flag:${flagName(def)}` : `flag:${k}` };
    }
    return layer as ConfigLayer;
  };
  return resolveLayers([asLayer(base), asLayer(raw)]).config;
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
