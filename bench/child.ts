/** Runs a bench child process with a deadline and returns the JSON on its last stdout line. */
import { spawn } from 'node:child_process';

export interface ChildOutcome<T> {
  result?: T;
  error?: string;
  seconds: number;
}

export function runJsonChild<T>(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ChildOutcome<T>> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve({ result: JSON.parse(last) as T, seconds });
      } catch {
        const why = signal === 'SIGKILL' ? `timed out after ${(timeoutMs / 1000).toFixed(0)} s` : `exited ${code ?? signal}`;
        resolve({ error: `${why}: ${err.trim().split('\n').slice(-3).join(' | ')}`, seconds });
      }
    });
  });
}
