/** How the CLI talks to people: one-line log messages on stderr, errors with their code. */
import { DistganError, describeError } from '../shared/errors.js';

export function logLine(line: string): void {
  process.stderr.write(`distgan: ${line}\n`);
}

/** Prints an error and returns the exit code it maps to (2 for bad input, 1 for runtime failures). */
export function fail(err: unknown): number {
  process.stderr.write(`distgan: error: ${describeError(err)}\n`);
  return err instanceof DistganError ? err.exitCode : 1;
}
