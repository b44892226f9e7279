/**
 * Durable atomic file writes: a reader sees either the whole old file or the
 * whole new one, never a mix, and the new one survives a power cut once the
 * call returns.
 *
 *   1. write to `<path>.tmp-<pid>-<random>` in the same folder (same
 *      filesystem, so the rename below is atomic)
 *   2. fsync the temp file (its bytes are on disk)
 *   3. rename it over `<path>`
 *   4. fsync the folder (the rename itself is on disk)
 *
 * Any failure removes the temp file. ENOSPC and EDQUOT become DiskFullError
 * (DISTGAN_E_NO_SPACE); other errors are rethrown as they came, because the
 * caller knows better what they mean.
 *
 * A process killed between 1 and 3 leaves its temp file behind;
 * removeStaleTempFiles() deletes those of processes that no longer exist.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DiskFullError } from './errors.js';

/** What to write: bytes, a UTF-8 string, or a list of byte chunks written back to back (not copied). */
export type AtomicData = string | Uint8Array | readonly Uint8Array[];

export interface AtomicWriteOptions {
  /** Permission bits of the new file (default 0o644, less the umask; an explicit mode is applied exactly). */
  mode?: number;
}

/** `<name>.tmp-<pid>` or `<name>.tmp-<pid>-<suffix>`; group 1 is the pid. */
const TEMP_NAME = /\.tmp-(\d{1,10})(?:-[A-Za-z0-9]+)?$/;

/** Temp files this process is writing right now, so that removeStaleTempFiles never deletes them. */
const inFlight = new Set<string>();

/** True for a file name that an atomic write (this helper's or an older distgan's) uses while writing. */
export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

export async function writeFileAtomic(path: string, data: AtomicData, options: AtomicWriteOptions = {}): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const chunks: readonly Uint8Array[] = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  inFlight.add(tmp);
  try {
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, 'wx', options.mode ?? 0o644);
      for (const chunk of chunks) await writeAll(fh, chunk);
      // open()'s mode passes through the umask; an explicit mode is meant exactly.
      if (options.mode !== undefined) await fh.chmod(options.mode);
      await fh.sync();
      const closing = fh;
      fh = undefined;
      await closing.close();
      await rename(tmp, path);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await rm(tmp, { force: true }).catch(() => undefined);
      throw await translate(err, path);
    }
  } finally {
    inFlight.delete(tmp);
  }
  await syncDirectory(dirname(path));
}

/** Pretty JSON plus a newline, written atomically; creates the parent folder. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Deletes temp files in `dir` (`*.tmp-<pid>`, `*.tmp-<pid>-<suffix>`) whose
 * writer is gone: no process has that pid (kill(pid, 0) gives ESRCH), or it is
 * this process's pid but not a write in progress here (a leftover of an earlier
 * process that had the same pid, as happens in containers). Files of live
 * processes, folders and other names are left alone. Returns the removed
 * names; a missing `dir` removes nothing.
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names.sort()) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const full = join(dir, name);
    if (pid === process.pid ? inFlight.has(full) : processExists(pid)) continue;
    try {
      if (!(await lstat(full)).isFile()) continue;
      await rm(full);
      removed.push(name);
    } catch (err) {
      // Another cleaner (or the writer's own error path) got there first.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

/** kill(pid, 0): ESRCH means no such process; EPERM means one exists that we may not signal. */
function processExists(pid: number): boolean {
  // pid 0 and negative pids address process groups; such a name is not ours, so treat it as alive.
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x7fffffff) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** FileHandle.write may write fewer bytes than asked (e.g. just before the disk fills up). */
async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.byteLength) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done);
    if (bytesWritten <= 0) throw Object.assign(new Error(`write returned ${bytesWritten}`), { code: 'EIO' });
    done += bytesWritten;
  }
}

async function translate(err: unknown, path: string): Promise<unknown> {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  const what = code === 'ENOSPC' ? 'the disk is full' : 'the disk quota is exhausted';
  const before = (await exists(path))
    ? `the previous ${basename(path)} is intact`
    : `nothing was written under that name`;
  return new DiskFullError(`could not write ${path}: ${what} (${code}); the partial file was removed and ${before}`, { cause: err });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * fsync of the folder makes the rename durable. Some platforms cannot open or
 * fsync a folder (Windows: EISDIR/EPERM); there the rename is as durable as it gets.
 */
async function syncDirectory(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF' && code !== 'EACCES') throw err;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
