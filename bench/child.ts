/**
 * Runs a bench child process with a deadline and returns the JSON on its last
 * stdout line; turns a child's failure into the DistganError it stands for.
 */
import { spawn } from 'node:child_process';
import { DeadlineError, DistganError } from '../src/shared/errors.js';

export interface ChildOutcome<T> {
  result?: T;
  /** Why no JSON came back: the child's coded error line where it printed one. */
  error?: string;
  /** The child's exit code (null when a signal ended it). */
  exitCode?: number | null;
  /** The exit code of the DistganError the child died of, where its stderr shows one. */
  errorExitCode?: number;
  /** True when the deadline killed it. */
  timedOut?: boolean;
  seconds: number;
}

/** What a child reports when its measurement failed (compute-child.ts's JSON carries these). */
export interface ChildFailure {
  error?: string;
  /** DistganError code (DISTGAN_E_…) of the failure, when it had one. */
  code?: string;
  /** The exit code that failure maps to (DistganError.exitCode). */
  exitCode?: number;
}

/** A `distgan: error: MESSAGE [DISTGAN_E_…]` line (cli/output.ts fail()), or a thrown DistganError's first line. */
const CODED_LINE = /^(?:distgan: error: )?(.*?)\s*\[(DISTGAN_E_[A-Z_]+)\]\s*$/;

/**
 * The reason a failed child gives on stderr: its last coded error line, else
 * the first line of the uncaught error ("XxxError: …"), else its last lines
 * without Node's version footer and stack frames.
 */
export function reasonFromStderr(stderr: string): { message: string; code?: string; exitCode?: number } {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = CODED_LINE.exec(lines[i]!);
    if (m !== null) return { message: m[1]!, code: m[2]! };
  }
  const thrown = lines.find((l) => /^[A-Za-z]*Error\b.*:/.test(l));
  if (thrown !== undefined) {
    // An uncaught DistganError prints its properties: `code: 'DISTGAN_E_…',` and `exitCode: 2`.
    const code = /code: '(DISTGAN_E_[A-Z_]+)'/.exec(stderr)?.[1];
    const exitCode = /exitCode: (\d+)/.exec(stderr)?.[1];
    const message = thrown.replace(/^[A-Za-z]*Error: /, '');
    if (code === undefined) return { message };
    return exitCode === undefined ? { message, code } : { message, code, exitCode: Number(exitCode) };
  }
  // Dropped: Node's version footer, JavaScript and native stack frames, the source excerpt.
  const tail = lines.filter((l) => !/^Node\.js v\d/.test(l) && !/^at /.test(l) && !/^\d+: /.test(l) && !/^-----/.test(l) && !/^[{}^]/.test(l));
  if (tail.length > 0) return { message: tail.slice(-3).join(' | ') };
  return { message: lines.length > 0 ? '(only a stack trace on stderr)' : '(no output on stderr)' };
}

export function runJsonChild<T>(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ChildOutcome<T>> {
  return runJsonCommand<T>(process.execPath, args, timeoutMs, env);
}

/** runJsonChild for any program (the PyTorch peers run under python3). */
export function runJsonCommand<T>(command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ChildOutcome<T>> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    // A program that cannot be started (ENOENT) still ends in one outcome, via 'exit' or here.
    p.on('error', (e) => {
      clearTimeout(timer);
      resolve({ error: `could not start ${command}: ${e.message}`, exitCode: null, seconds: (performance.now() - t0) / 1000 });
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutMs);
    let stdoutEnded = false;
    p.stdout.on('end', () => (stdoutEnded = true));
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can come before the last stdout bytes; wait for them briefly (not for 'close':
      // a grandchild that outlives a killed child would hold the pipe open forever).
      if (!stdoutEnded) {
        const grace = setTimeout(() => finish(code, signal), 1000);
        p.stdout.once('end', () => {
          clearTimeout(grace);
          finish(code, signal);
        });
      } else finish(code, signal);
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      const seconds = (performance.now() - t0) / 1000;
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve({ result: JSON.parse(last) as T, exitCode: code, seconds });
      } catch {
        const reason = reasonFromStderr(err);
        const why = timedOut ? `timed out after ${(timeoutMs / 1000).toFixed(0)} s` : `exited ${code ?? signal}`;
        const coded = reason.code === undefined ? reason.message : `${reason.message} [${reason.code}]`;
        const outcome: ChildOutcome<T> = { error: `${why}: ${coded}`, exitCode: code, timedOut, seconds };
        if (reason.exitCode !== undefined) outcome.errorExitCode = reason.exitCode;
        resolve(outcome);
      }
    };
  });
}

/**
 * The error a failed child measurement stands for, or undefined when it
 * succeeded. The child's own DistganError code and exit code are kept (so
 * `--backend webgpu` without a driver still exits 2 with
 * DISTGAN_E_BACKEND_UNAVAILABLE); a timeout is a DeadlineError; anything
 * else that gave no coded error is DISTGAN_E_INTERNAL (exit 1).
 */
export function childFailure(what: string, outcome: ChildOutcome<ChildFailure>): DistganError | undefined {
  const res = outcome.result;
  if (res !== undefined && res.error === undefined) return undefined;
  if (res !== undefined) {
    const code = res.code ?? 'DISTGAN_E_INTERNAL';
    const message = res.error!.replace(` [${code}]`, '');
    return new DistganError(code, `${what}: ${message}`, { exitCode: res.exitCode ?? 1 });
  }
  const error = outcome.error ?? 'no result';
  if (outcome.timedOut === true) return new DeadlineError(`${what}: ${error}`);
  const code = /\[(DISTGAN_E_[A-Z_]+)\]$/.exec(error)?.[1];
  if (code !== undefined) {
    const exitCode = outcome.errorExitCode ?? (outcome.exitCode !== undefined && outcome.exitCode !== null && outcome.exitCode > 0 ? outcome.exitCode : 1);
    return new DistganError(code, `${what}: ${error.replace(` [${code}]`, '')}`, { exitCode });
  }
  return new DistganError('DISTGAN_E_INTERNAL', `${what}: ${error}`);
}

// ---------------------------------------------------------------------------
// PyTorch peers (bench/torch_dcgan.py, bench/torch_ddp.py)

/**
 * The Python that runs the PyTorch peers: DISTGAN_PYTHON, else /usr/bin/python3
 * (Debian's python3-torch installs there, and not for another python on the PATH).
 */
export function pythonForTorch(env: NodeJS.ProcessEnv = process.env): string {
  return env['DISTGAN_PYTHON'] !== undefined && env['DISTGAN_PYTHON'] !== '' ? env['DISTGAN_PYTHON'] : '/usr/bin/python3';
}

export type TorchProbe =
  | { available: true; python: string; version: string; cpus: number }
  | { available: false; python: string; reason: string };

/**
 * Whether PyTorch can be imported, and its version. Never throws: a bench
 * reports `torch: {available: false, reason}` and carries on without it.
 */
export async function probeTorch(env: NodeJS.ProcessEnv = process.env): Promise<TorchProbe> {
  const python = pythonForTorch(env);
  const code = 'import json, os, torch; print(json.dumps({"version": torch.__version__, "cpus": len(os.sched_getaffinity(0))}))';
  const r = await runJsonCommand<{ version: string; cpus: number }>(python, ['-c', code], 60_000, env);
  if (r.result !== undefined) return { available: true, python, version: r.result.version, cpus: r.result.cpus };
  const why = r.error ?? 'no answer';
  return { available: false, python, reason: `PyTorch is not usable with ${python} (${why}); on Debian install python3-torch (sudo apt-get install -y python3-torch), or point DISTGAN_PYTHON at a python with torch` };
}
