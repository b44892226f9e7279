/**
 * Checks model definitions share when validating their spec fields, so every
 * message reads the same: "model spec <key>: <value as JSON> is not <want>".
 */
import { ConfigError } from '../errors.js';

/** The ConfigError for a spec field that fails its check. */
export function fieldError(key: string, value: unknown, want: string): ConfigError {
  return new ConfigError(`model spec ${key}: ${JSON.stringify(value)} is not ${want}`);
}

/** True for an integer in [min, max]. */
export function isIntIn(v: unknown, min: number, max: number): v is number {
  return Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
}

/** Throws unless spec[key] is an integer in [1, max]. */
export function requirePositiveInt(spec: Readonly<Record<string, unknown>>, key: string, max: number, want = `an integer in [1, ${max}]`): void {
  if (!isIntIn(spec[key], 1, max)) throw fieldError(key, spec[key], want);
}

/** A sample shape as "[28, 28, 1]", for error messages. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
