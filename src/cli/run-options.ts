/**
 * The CLI edge for training commands: registers RUN_OPTIONS on a commander
 * command, turns what the user typed into a frozen RunConfig, and applies the
 * resume rules (training options come from the checkpoint; an explicit flag
 * that contradicts it is an error naming the flag).
 */
import { Option, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { RUN_OPTIONS, TRAINING_KEYS, flagOf, resolveConfig, type RunConfig, type TrainingConfig } from '../shared/config.js';
import { ConfigError } from '../shared/errors.js';
import { readCheckpoint, type Checkpoint } from '../shared/checkpoint.js';
import { logLine } from './output.js';

export function addRunOptions(cmd: Command, skip: readonly (keyof RunConfig)[] = []): Command {
  for (const def of RUN_OPTIONS) {
    if (skip.includes(def.key)) continue;
    const opt = new Option(def.flags, def.description);
    // No commander defaults: resolveConfig applies them, so an absent flag is distinguishable.
    if (def.key === 'batchNorm') opt.default(undefined);
    cmd.addOption(opt);
  }
  return cmd;
}

/** Raw values the user actually gave on the command line. */
export function givenOptions(cmd: Command): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  const opts = cmd.opts();
  for (const def of RUN_OPTIONS) {
    const src = cmd.getOptionValueSource(def.key);
    if (src === 'cli' || src === 'env') raw[def.key] = opts[def.key];
  }
  return raw;
}

export interface ResolvedRun {
  config: Readonly<RunConfig>;
  resumeFrom?: Checkpoint;
}

/**
 * Resolves the config. With --resume, every training option comes from the
 * checkpoint unless given; a given one must equal the checkpoint's, because
 * the continuation would otherwise not be the same run. --out defaults to the
 * resumed run's folder. With --resume-latest-valid, a run folder whose newest
 * checkpoints are corrupt resumes from the newest one that verifies, and each
 * one passed over is logged on stderr.
 */
export async function resolveRun(cmd: Command): Promise<ResolvedRun> {
  const raw = givenOptions(cmd);
  const latestValid = parseFlag('resumeLatestValid', raw.resumeLatestValid) === true;
  if (raw.resume === undefined) {
    if (latestValid) throw new ConfigError('--resume-latest-valid needs --resume <run folder>');
    return { config: resolveConfig(raw) };
  }
  const ckpt = await readCheckpoint(String(raw.resume), { latestValid });
  for (const s of ckpt.skipped) logLine(`skipping a checkpoint that does not verify: ${s.reason}`);
  if (ckpt.skipped.length > 0) logLine(`resuming from ${ckpt.path} (step ${ckpt.header.step})`);
  const fromCkpt: Partial<RunConfig> = { ...ckpt.header.training };
  const probe = resolveConfig({ ...raw, out: raw.out ?? 'unused' }, fromCkpt);
  for (const k of TRAINING_KEYS) {
    if (raw[k] !== undefined && probe[k] !== (ckpt.header.training as TrainingConfig)[k]) {
      throw new ConfigError(`${flagOf(k)} ${JSON.stringify(probe[k])} differs from the checkpoint's ${JSON.stringify(ckpt.header.training[k])}: an exact resume needs the same training options (leave the flag out)`);
    }
  }
  if (probe.steps <= ckpt.header.step) {
    throw new ConfigError(`--steps ${probe.steps} is not beyond the checkpoint's step ${ckpt.header.step}: nothing to resume`);
  }
  // checkpoints/step-N.ckpt lives in <run>/checkpoints; continue in <run> unless --out says otherwise.
  const runDir = dirname(dirname(ckpt.path));
  const config = resolveConfig({ ...raw, out: raw.out ?? runDir }, fromCkpt);
  return { config, resumeFrom: ckpt };
}

/** A raw flag value parsed the way resolveConfig would; undefined when not given. */
function parseFlag<K extends keyof RunConfig>(key: K, raw: unknown): RunConfig[K] | undefined {
  if (raw === undefined) return undefined;
  const def = RUN_OPTIONS.find((d) => d.key === key);
  if (!def) throw new ConfigError(`unknown option '${key}'`);
  return def.parse(raw, flagOf(key)) as RunConfig[K];
}

/** config.json of a run folder, as resolved (absolute out). */
export async function readRunConfig(runDir: string): Promise<RunConfig> {
  return JSON.parse(await readFile(resolve(runDir, 'config.json'), 'utf8')) as RunConfig;
}
