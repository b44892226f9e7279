/**
 * The CLI edge for training commands: registers RUN_OPTIONS on a commander
 * command, turns what the user gave into a frozen RunConfig, and applies the
 * resume rules (training options come from the checkpoint; an explicit value
 * that contradicts it is an error naming the flag, variable or file).
 *
 * Layers, lowest to highest (docs/configuration.md):
 *   default < --config file < DISTGAN_<FLAG> variables < flags
 * Commander gets no defaults and no env bindings, so that "absent" stays
 * distinguishable and every layer is read here, in one place.
 */
import { Option, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  RUN_OPTIONS,
  TRAINING_KEYS,
  envLayer,
  envOption,
  labelOf,
  parseConfigFile,
  resolveLayers,
  type ConfigFile,
  type ConfigLayer,
  type RawValue,
  type RunConfig,
  type ValueSource,
} from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { readCheckpoint, type Checkpoint } from '../shared/checkpoint.js';
import { VERSION } from '../shared/version.js';
import { logLine } from './output.js';

/** Printed after --help of launch, coordinator and worker. */
export const ENV_HELP = '\nEvery option can also be set as DISTGAN_<OPTION>: --join-timeout → DISTGAN_JOIN_TIMEOUT; a switch takes\n1/0 (true/false, yes/no, on/off) and a --no-x switch is named after x (DISTGAN_BATCH_NORM=0). Flags win over\nvariables. See docs/configuration.md.';

/** Printed after --help of the commands that take --config. */
const CONFIG_HELP = "Values from --config (JSON or YAML, keys as in a run's config.json) sit below variables and flags.";

export function addRunOptions(cmd: Command, skip: readonly (keyof RunConfig)[] = []): Command {
  for (const def of RUN_OPTIONS) {
    if (skip.includes(def.key)) continue;
    const opt = new Option(def.flags, def.description);
    // No commander defaults: resolveLayers applies them, so an absent flag is distinguishable.
    if (def.key === 'batchNorm') opt.default(undefined);
    cmd.addOption(opt);
  }
  cmd.option('--config <file>', "JSON or YAML file of options, keys as in a run's config.json (a run's own config.json repeats it); variables and flags override it (default: none)");
  cmd.addHelpText('after', `${ENV_HELP}\n${CONFIG_HELP}`);
  return cmd;
}

/** The flag layer: values the user actually gave on the command line. */
export function flagLayer(cmd: Command): ConfigLayer {
  const layer: ConfigLayer = {};
  const opts = cmd.opts();
  for (const def of RUN_OPTIONS) {
    if (cmd.getOptionValueSource(def.key) !== 'cli') continue;
    const long = def.flags.split(/[ ,]/)[0]!;
    layer[def.key] = { value: opts[def.key], source: `flag:${long}` };
  }
  return layer;
}

/**
 * One command-specific option (not in RUN_OPTIONS): the flag when given, else
 * its DISTGAN_ variable; undefined when neither is set.
 */
export function commandValue(cmd: Command, key: string, env: NodeJS.ProcessEnv): RawValue | undefined {
  const opt = cmd.options.find((o) => o.attributeName() === key);
  if (!opt) throw new Error(`${cmd.name()} has no option ${key}`);
  if (cmd.getOptionValueSource(key) === 'cli') return { value: cmd.opts()[key], source: `flag:${opt.long}` };
  return envOption(opt.flags, env);
}

/** The raw string of a command value, named for errors ('--workers', 'DISTGAN_WORKERS'). */
export function rawString(v: RawValue): { raw: string; label: string } {
  return { raw: String(v.value), label: labelOf('', v.source) };
}

/** Reads and validates a --config file: `.json` as JSON, anything else as YAML (a superset of JSON). */
export async function loadConfigFile(path: string, source: ValueSource): Promise<ConfigFile> {
  const via = labelOf('', source);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${via} ${path} ${code === 'ENOENT' ? 'does not exist' : 'cannot be read'}`, { cause: e });
  }
  let contents: unknown;
  try {
    contents = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new ConfigError(`${via} ${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}`, { cause: e });
  }
  return parseConfigFile(contents, path, VERSION);
}

export interface ResolvedRun {
  config: Readonly<RunConfig>;
  /** Where each value came from, for --dry-run. */
  sources: Readonly<Record<keyof RunConfig, ValueSource>>;
  resumeFrom?: Checkpoint;
  /** The --config file, when one was given. */
  file?: ConfigFile;
}

/**
 * Resolves the config from its layers. With --resume, every training option
 * comes from the checkpoint unless given (in a file, a variable or a flag); a
 * given one must equal the checkpoint's, because the continuation would
 * otherwise not be the same run. --out defaults to the resumed run's folder.
 * With --resume-latest-valid, a run folder whose newest checkpoints are
 * corrupt resumes from the newest one that verifies, and each one passed over
 * is logged on stderr.
 */
export async function resolveRun(cmd: Command, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedRun> {
  const configPath = commandValue(cmd, 'config', env);
  const file = configPath ? await loadConfigFile(String(configPath.value), configPath.source) : undefined;
  for (const note of file?.notes ?? []) logLine(note);
  const layers: ConfigLayer[] = [file?.layer ?? {}, envLayer(env), flagLayer(cmd)];
  const first = resolveLayers(layers);
  const withFile = file ? { file } : {};
  if (first.config.resume === undefined) {
    if (first.config.resumeLatestValid) throw new ConfigError(`${labelOf('resumeLatestValid', first.sources.resumeLatestValid)} needs --resume <run folder>`);
    return { ...first, ...withFile };
  }
  const ckpt = await readCheckpoint(first.config.resume, { latestValid: first.config.resumeLatestValid });
  for (const s of ckpt.skipped) logLine(`skipping a checkpoint that does not verify: ${s.reason}`);
  if (ckpt.skipped.length > 0) logLine(`resuming from ${ckpt.path} (step ${ckpt.header.step})`);
  const training = ckpt.header.training as unknown as Record<string, unknown>;
  for (const k of TRAINING_KEYS) {
    const source = first.sources[k];
    if (source !== 'default' && first.config[k] !== training[k]) {
      const label = labelOf(k, source);
      throw new ConfigError(`${label} ${JSON.stringify(first.config[k])} differs from the checkpoint's ${JSON.stringify(training[k])}: an exact resume needs the same training options (leave ${source.startsWith('flag:') ? 'the flag' : 'it'} out)`);
    }
  }
  if (first.config.steps <= ckpt.header.step) {
    throw new ConfigError(`${labelOf('steps', first.sources.steps)} ${first.config.steps} is not beyond the checkpoint's step ${ckpt.header.step}: nothing to resume`);
  }
  // checkpoints/step-N.ckpt lives in <run>/checkpoints; continue in <run> unless --out says otherwise.
  const fromCkpt: ConfigLayer = { out: { value: dirname(dirname(ckpt.path)), source: `checkpoint:${ckpt.path}` } };
  for (const k of TRAINING_KEYS) fromCkpt[k] = { value: training[k], source: `checkpoint:${ckpt.path}` };
  return { ...resolveLayers([fromCkpt, ...layers]), resumeFrom: ckpt, ...withFile };
}

/** config.json of a run folder, as resolved (absolute out). */
export async function readRunConfig(runDir: string): Promise<RunConfig> {
  return JSON.parse(await readFile(resolve(runDir, 'config.json'), 'utf8')) as RunConfig;
}
