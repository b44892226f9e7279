import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, ConfigError, DistganError, describeError } from '../../src/shared/errors.js';
import { ROOT } from '../helpers/cli.js';

test('every error code is documented in docs/errors.md', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  for (const code of ERROR_CODES) assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs/errors.md`);
});

test('errors carry codes, exit codes and chained causes', () => {
  const root = new Error('ENOENT: no such file');
  const e = new ConfigError('--dataset /x does not exist', { cause: root });
  assert.ok(e instanceof DistganError);
  assert.equal(e.code, 'DISTGAN_E_CONFIG');
  assert.equal(e.exitCode, 2);
  assert.equal(e.cause, root);
  assert.equal(describeError(e), '--dataset /x does not exist [DISTGAN_E_CONFIG]: caused by: ENOENT: no such file');
});
