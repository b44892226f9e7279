/**
 * Runs the real `distgan` CLI (bin/distgan.js → dist/) as a child process,
 * with a deadline, capturing its output. Shared by the process-tier tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found');
    dir = up;
  }
  return dir;
}

export const ROOT = findRoot();
export const BIN = join(ROOT, 'bin', 'distgan.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stderr then stdout: everything the command said (with --log-format json, its log lines are on stdout). */
  output: string;
  seconds: number;
}

export interface RunningCli {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** stderr and stdout interleaved in arrival order (json log lines are on stdout, others on stderr). */
  output(): string;
  done: Promise<CliResult>;
  /** Resolves when `re` matches stderr+stdout, or rejects at the deadline. */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

export function startCli(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): RunningCli {
  const t0 = performance.now();
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, CI: 'true', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let both = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    both += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    both += d.toString();
  });
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const done = new Promise<CliResult>((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Let the pipes drain.
      setTimeout(() => resolve({ code, signal, stdout: out, stderr: err, output: err + out, seconds: (performance.now() - t0) / 1000 }), 50);
    });
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    output: () => both,
    done,
    waitFor(re, ms) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + ms;
        const poll = (): void => {
          const m = (err + out).match(re);
          if (m) return resolve(m);
          if (Date.now() > deadline || proc.exitCode !== null) return reject(new Error(`timed out waiting for ${re}; output:\n${err.slice(-2000)}`));
          setTimeout(poll, 50);
        };
        poll();
      });
    },
  };
}

export function runCli(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}

export function tempDir(prefix = 'distgan-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A fresh temporary folder for one test, removed afterwards whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>, prefix = 'distgan-test-'): Promise<T> {
  const dir = await tempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True if a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of an executable on PATH (or in /usr/bin, /usr/local/bin), or undefined. */
export function which(name: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}
