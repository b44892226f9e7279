/**
 * Puts a prepared dataset in place atomically. Everything is written into a
 * hidden staging directory next to the target (same filesystem, so the final
 * rename is atomic) and renamed onto the target only when complete. An
 * interrupted prepare therefore leaves at most a `.NAME.partial-HOST-PID-…`
 * sibling, never a target that looks complete; the next prepare into the same
 * target removes partials whose process (on this host) is gone.
 */
import { hostname } from 'node:os';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../../errors.js';
import { INDEX_FILE, PACKED_FORMAT } from './format.js';

export interface StagedOutput {
  /** Absolute target path. */
  readonly target: string;
  /** Staging directory to write into. */
  readonly dir: string;
  /** Renames the staging directory onto the target (replacing an old dataset under force). */
  commit(): Promise<void>;
  /** Removes the staging directory. Safe to call more than once. */
  abort(): Promise<void>;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A short human reason for a filesystem error code. */
function explain(err: unknown): string {
  const code = errnoOf(err);
  switch (code) {
    case 'ENOTDIR':
      return 'part of the path is a file, not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only filesystem';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return code ?? String(err);
  }
}

function partialPrefix(target: string): string {
  return `.${basename(target)}.partial-${hostname()}-`;
}

/** Whether a process with this pid is alive on this host. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}

/** Lists sibling staging directories left by earlier prepares into `target` (any host). */
export async function findPartials(target: string): Promise<string[]> {
  const abs = resolve(target);
  const prefix = `.${basename(abs)}.partial-`;
  try {
    return (await readdir(dirname(abs))).filter((n) => n.startsWith(prefix)).map((n) => join(dirname(abs), n));
  } catch {
    return [];
  }
}

async function removeDeadPartials(target: string): Promise<void> {
  const prefix = partialPrefix(target);
  for (const p of await findPartials(target)) {
    const name = basename(p);
    if (!name.startsWith(prefix)) continue; // another host's: its pid means nothing here
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) {
      await rm(p, { recursive: true, force: true });
    }
  }
}

/** Describes what is at `target` now. */
async function inspectTarget(target: string): Promise<'absent' | 'empty' | 'dataset' | 'other'> {
  let st;
  try {
    st = await stat(target);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'absent';
    throw new ConfigError(`--out ${target} cannot be used: ${explain(err)}`, { cause: err });
  }
  if (!st.isDirectory()) return 'other';
  const entries = await readdir(target);
  if (entries.length === 0) return 'empty';
  try {
    const idx = JSON.parse(await readFile(join(target, INDEX_FILE), 'utf8')) as { format?: unknown };
    if (idx.format === PACKED_FORMAT) return 'dataset';
  } catch {
    // not a dataset
  }
  return 'other';
}

async function checkTarget(target: string, force: boolean): Promise<'absent' | 'empty' | 'dataset'> {
  const state = await inspectTarget(target);
  if (state === 'other') {
    throw new ConfigError(
      `--out ${target} already exists and is not an empty directory or a distgan dataset; ` +
        'choose another --out (prepare never deletes files it did not write)',
    );
  }
  if (state === 'dataset' && !force) {
    throw new ConfigError(`--out ${target} already holds a prepared dataset; pass --force to replace it, or choose another --out`);
  }
  return state;
}

/**
 * Checks the target and creates the staging directory. Throws ConfigError when
 * the target exists (non-empty; a previous dataset is replaced only with
 * `force`) or when its parent cannot be written.
 */
export async function stageOutput(target: string, opts: { force?: boolean } = {}): Promise<StagedOutput> {
  const abs = resolve(target);
  const force = opts.force === true;
  await checkTarget(abs, force);
  const parent = dirname(abs);
  try {
    await mkdir(parent, { recursive: true });
  } catch (err) {
    throw new ConfigError(`--out ${abs}: cannot create its parent directory ${parent}: ${explain(err)}`, { cause: err });
  }
  await removeDeadPartials(abs);
  const dir = join(parent, `${partialPrefix(abs)}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(dir);
  } catch (err) {
    throw new ConfigError(`--out ${abs}: cannot write in ${parent}: ${explain(err)}`, { cause: err });
  }
  let done = false;
  return {
    target: abs,
    dir,
    async commit() {
      if (done) throw new Error('StagedOutput: already committed or aborted');
      // Checked again: something may have appeared at the target meanwhile.
      const state = await checkTarget(abs, force);
      if (state === 'dataset') {
        const old = join(parent, `.${basename(abs)}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
        await rename(abs, old);
        try {
          await rename(dir, abs);
        } catch (err) {
          await rename(old, abs).catch(() => undefined);
          throw err;
        }
        await rm(old, { recursive: true, force: true });
      } else {
        // rename(2) replaces an empty directory atomically.
        await rename(dir, abs);
      }
      done = true;
    },
    async abort() {
      if (done) return;
      done = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
