/**
 * One error family for distgan. Every failure a user can meet carries a stable
 * `code` (DISTGAN_E_…) that scripts can match on and that docs/errors.md lists;
 * the message names the offending flag, rank, file or value. `cause` is chained
 * so the original library error is never lost.
 *
 * `exitCode` is what the CLI exits with: 2 for bad input (flags, config, keys,
 * datasets the user pointed at), 1 for runtime failures (a worker died, a
 * replica diverged).
 */
export class DistganError extends Error {
  readonly code: string;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** A flag, config key or config value is invalid. Nothing has been written yet. */
export class ConfigError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_CONFIG', message, { ...options, exitCode: 2 });
  }
}

/** A requested compute backend cannot be loaded on this machine. */
export class BackendUnavailableError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_BACKEND_UNAVAILABLE', message, { ...options, exitCode: 2 });
  }
}

/** A dataset is missing, corrupt or not in a supported format. */
export class DatasetError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_DATASET', message, { ...options, exitCode: 2 });
  }
}

/** A wire frame could not be decoded or failed validation. */
export class ProtocolError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_PROTOCOL', message, options);
  }
}

/** The coordinator refused a worker's join (version, fingerprint or rank mismatch). */
export class JoinRefusedError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_JOIN_REFUSED', message, { ...options, exitCode: 2 });
  }
}

/** A deadline passed: join, step or shutdown. The message names who was waited for. */
export class DeadlineError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_DEADLINE', message, options);
  }
}

/** A worker exited, went silent or reported a failure mid-run. */
export class WorkerFailedError extends DistganError {
  readonly rank: number;
  constructor(rank: number, message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_WORKER_FAILED', message, options);
    this.rank = rank;
  }
}

/** Replica weight checksums disagree across ranks. */
export class ReplicaDivergedError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_REPLICA_DIVERGED', message, options);
  }
}

/** A checkpoint is missing, truncated or does not match the run's model. */
export class CheckpointError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_CHECKPOINT', message, { ...options, exitCode: 2 });
  }
}

/** A numeric failure: NaN/Inf in gradients or losses. */
export class NumericError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_NUMERIC', message, options);
  }
}

/** A CURVE key file is missing or malformed, or a peer was not authorised. */
export class KeyError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_KEY', message, { ...options, exitCode: 2 });
  }
}

/** The run was interrupted by SIGINT/SIGTERM; a checkpoint was written where possible. */
export class InterruptedError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_INTERRUPTED', message, { ...options, exitCode: 130 });
  }
}

/** A file could not be written because the disk (or quota) is full; what was there before is intact. */
export class DiskFullError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_NO_SPACE', message, options);
  }
}

/** A listening address (--bind, --metrics-port) could not be bound; the message names the flag. */
export class BindError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_BIND', message, { ...options, exitCode: 2 });
  }
}

/** A shard owner of a sharded reduction (a thread or a `distgan reducer` process) failed, exited or went silent. */
export class ReducerLostError extends DistganError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('DISTGAN_E_REDUCER_LOST', message, options);
  }
}

/** Every stable code, so tests can check that docs/errors.md documents each one. */
export const ERROR_CODES = [
  'DISTGAN_E_CONFIG',
  'DISTGAN_E_BACKEND_UNAVAILABLE',
  'DISTGAN_E_DATASET',
  'DISTGAN_E_PROTOCOL',
  'DISTGAN_E_JOIN_REFUSED',
  'DISTGAN_E_DEADLINE',
  'DISTGAN_E_WORKER_FAILED',
  'DISTGAN_E_REDUCER_LOST',
  'DISTGAN_E_REPLICA_DIVERGED',
  'DISTGAN_E_CHECKPOINT',
  'DISTGAN_E_NUMERIC',
  'DISTGAN_E_KEY',
  'DISTGAN_E_INTERRUPTED',
  'DISTGAN_E_NO_SPACE',
  'DISTGAN_E_BIND',
  'DISTGAN_E_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Formats any thrown value for a one-line CLI message, walking the cause chain. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    if (cur instanceof DistganError) parts.push(`${cur.message} [${cur.code}]`);
    else if (cur instanceof Error) parts.push(cur.message);
    else parts.push(String(cur));
    cur = cur instanceof Error ? (cur as Error & { cause?: unknown }).cause : undefined;
  }
  return parts.join(': caused by: ');
}
