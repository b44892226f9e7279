/**
 * The run configuration: defaults, validation, the layers (default < config
 * file < DISTGAN_ variables < flags) with the source of each value, config
 * files (a run's config.json repeats it), and --help stating each default once.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RUN_OPTIONS, envLayer, envNameOf, labelOf, parseConfigFile, resolveConfig, resolveLayers, type ConfigLayer } from '../../src/shared/config.js';
import { parseGpuList } from '../../src/shared/compute/backends.js';
import { ConfigError } from '../../src/shared/errors.js';
import { register as registerLaunch } from '../../src/cli/commands/launch.js';
import { register as registerCoordinator } from '../../src/cli/commands/coordinator.js';
import { register as registerWorker } from '../../src/cli/commands/worker.js';
import { register as registerReducer } from '../../src/cli/commands/reducer.js';
import { PACKAGE_ROOT } from '../../src/shared/version.js';

test('defaults resolve and the result is deeply frozen', () => {
  const c = resolveConfig({});
  assert.equal(c.batchSize, 64);
  assert.equal(c.dataset, 'mnist');
  assert.equal(c.lr, 2e-4);
  assert.equal(c.beta1, 0.5);
  assert.equal(c.metricsPort, 9464);
  assert.match(c.out, /^runs\/\d{8}-\d{6}$/);
  assert.ok(Object.isFrozen(c));
  assert.throws(() => {
    (c as { steps: number }).steps = 3;
  }, TypeError);
});

test('bad values name the flag and the value', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ batchSize: '0' }, /--batch-size: "0" is not an integer/],
    [{ batchSize: '12.5' }, /--batch-size/],
    [{ lr: 'fast' }, /--lr: "fast" is not a number/],
    [{ backend: 'tpu' }, /--backend: "tpu" is not one of auto, tensorflow, webgpu, wasm, cpu/],
    [{ metricsPort: '70000' }, /--metrics-port/],
    [{ labelSmoothing: '0.9' }, /--label-smoothing/],
    [{ bogus: 1 }, /unknown option 'bogus'/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(() => resolveConfig(raw), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message) && e.exitCode === 2, JSON.stringify(raw));
  }
});

test('every option documents its default', () => {
  for (const o of RUN_OPTIONS) assert.match(o.description, /default|\(default/, `${o.flags} has no default in its description`);
});

test('GPU lists', () => {
  assert.deepEqual(parseGpuList('0,1, 3'), [0, 1, 3]);
  assert.throws(() => parseGpuList('0,0'), /twice/);
  assert.throws(() => parseGpuList('a'), /--gpus/);
});

// ---------------------------------------------------------------- layers

describe('DISTGAN_ variables', () => {
  test('named after the long flag; a --no-x flag after x', () => {
    assert.equal(envNameOf('--batch-size <n>'), 'DISTGAN_BATCH_SIZE');
    assert.equal(envNameOf('--no-batch-norm'), 'DISTGAN_BATCH_NORM');
    assert.equal(envNameOf('--beta1 <b>'), 'DISTGAN_BETA1');
    assert.equal(envNameOf('--dry-run'), 'DISTGAN_DRY_RUN');
    const names = RUN_OPTIONS.map((o) => envNameOf(o.flags));
    assert.equal(new Set(names).size, names.length, 'one variable per option');
    for (const n of names) assert.match(n, /^DISTGAN_[A-Z0-9_]+$/);
  });

  test('switches take 1/0, true/false, yes/no, on/off; DISTGAN_BATCH_NORM=0 is --no-batch-norm', () => {
    for (const [raw, want] of [['1', true], ['TRUE', true], ['yes', true], ['on', true], ['0', false], ['false', false], ['No', false], ['off', false]] as const) {
      assert.equal(resolveLayers([envLayer({ DISTGAN_FLIP: raw })]).config.flip, want, raw);
    }
    const { config, sources } = resolveLayers([envLayer({ DISTGAN_BATCH_NORM: '0' })]);
    assert.equal(config.batchNorm, false);
    assert.equal(sources.batchNorm, 'env:DISTGAN_BATCH_NORM');
    assert.throws(() => envLayer({ DISTGAN_FLIP: 'maybe' }), (e: unknown) => e instanceof ConfigError && /DISTGAN_FLIP="maybe" is not a boolean/.test(e.message));
  });

  test('DISTGAN_NO_<X> is refused with the right name, not ignored', () => {
    assert.throws(() => envLayer({ DISTGAN_NO_BATCH_NORM: '1' }), (e: unknown) => e instanceof ConfigError && /DISTGAN_NO_BATCH_NORM is not read.*DISTGAN_BATCH_NORM=0/.test(e.message));
  });

  test('an empty variable counts as unset; unrelated DISTGAN_ variables are not options', () => {
    assert.deepEqual(envLayer({ DISTGAN_BATCH_SIZE: '', DISTGAN_LAUNCHED: '1', DISTGAN_HOME: '/x', DISTGAN_TEST: '1' }), {});
  });

  test('a bad value names the variable', () => {
    assert.throws(() => resolveLayers([envLayer({ DISTGAN_BATCH_SIZE: 'big' })]), (e: unknown) => e instanceof ConfigError && /^DISTGAN_BATCH_SIZE: "big" is not an integer/.test(e.message));
  });
});

describe('precedence: default < config file < environment < flag', () => {
  const file = parseConfigFile({ steps: 7, seed: 3, lr: 0.001, batchSize: 32 }, 'run.yaml', '0.1.0');
  const env = envLayer({ DISTGAN_SEED: '5', DISTGAN_LR: '0.003' });
  const flags: ConfigLayer = { lr: { value: '0.0005', source: 'flag:--lr' } };

  test('each value comes from the highest layer that gives it, and says so', () => {
    const { config, sources } = resolveLayers([file.layer, env, flags]);
    assert.equal(config.width, 1);
    assert.equal(sources.width, 'default');
    assert.equal(config.steps, 7);
    assert.equal(sources.steps, 'file:run.yaml');
    assert.equal(config.seed, 5);
    assert.equal(sources.seed, 'env:DISTGAN_SEED');
    assert.equal(config.lr, 0.0005);
    assert.equal(sources.lr, 'flag:--lr');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(sources));
  });

  test('a value is validated in every layer, even where a higher one overrides it', () => {
    const badEnv = envLayer({ DISTGAN_SEED: '-1' });
    assert.throws(() => resolveLayers([file.layer, badEnv, { seed: { value: '2', source: 'flag:--seed' } }]), /DISTGAN_SEED: "-1"/);
    assert.throws(() => parseConfigFile({ seed: 'x' }, 'run.yaml', '0.1.0'), (e: unknown) => e instanceof ConfigError && /seed \(run\.yaml\): "x" is not an integer/.test(e.message));
  });

  test('resolveConfig (flags over a base) keeps its messages', () => {
    assert.equal(resolveConfig({ seed: '4' }, { seed: 9, steps: 3 }).seed, 4);
    assert.equal(resolveConfig({}, { seed: 9 }).seed, 9);
    assert.throws(() => resolveConfig({ onBadGradient: 'drop-worker' }), /^ConfigError: --on-bad-gradient drop-worker needs elastic membership/);
  });
});

describe('config files', () => {
  test('unknown keys are refused naming the key and the file, with a hint for flag spellings', () => {
    assert.throws(() => parseConfigFile({ bogus: 1 }, 'a.json', '0.1.0'), (e: unknown) => e instanceof ConfigError && e.message === "unknown key 'bogus' in a.json" && e.exitCode === 2);
    assert.throws(() => parseConfigFile({ 'batch-size': 1 }, 'a.yaml', '0.1.0'), /unknown key 'batch-size' in a\.yaml \(did you mean 'batchSize'\?/);
    assert.throws(() => parseConfigFile({ world_size: 1 }, 'a.yaml', '0.1.0'), /did you mean 'worldSize'/);
  });

  test('a file holds one mapping', () => {
    for (const bad of [null, [], 'steps: 3', 7]) assert.throws(() => parseConfigFile(bad, 'a.yaml', '0.1.0'), /a\.yaml: a config file holds one mapping/);
  });

  test("a run's config.json resolves to the same config, out aside; its out, resume and dryRun are not reused", () => {
    const original = resolveConfig({ dataset: 'ring8', model: 'mlp', width: '0.25', batchSize: '64', backend: 'wasm', metricsPort: '0', steps: '8', batchNorm: false, out: '/runs/x' });
    const record: Record<string, unknown> = JSON.parse(JSON.stringify({ ...original, resume: '/runs/w', out: '/runs/x', worldSize: 2, version: '0.1.0' }));
    const file = parseConfigFile(record, '/runs/x/config.json', '0.1.0');
    assert.equal(file.worldSize, 2);
    assert.equal(file.layer.out, undefined);
    assert.equal(file.layer.resume, undefined);
    assert.ok(file.notes.some((n) => /records a run that wrote to \/runs\/x; that folder is not reused/.test(n)), file.notes.join('\n'));
    assert.ok(file.notes.some((n) => /resume in \/runs\/x\/config\.json is ignored/.test(n)), file.notes.join('\n'));
    const again = resolveLayers([file.layer, { out: { value: '/runs/y', source: 'flag:--out' } }]).config;
    assert.deepEqual({ ...again, out: '/runs/x' }, original);
  });

  test('a hand-written file (no version) may set out; a different version is a note', () => {
    assert.deepEqual(parseConfigFile({ out: 'runs/exp' }, 'e.yaml', '0.1.0').layer.out, { value: 'runs/exp', source: 'file:e.yaml' });
    const f = parseConfigFile({ version: '0.0.9', steps: 3 }, 'c.json', '0.1.0');
    assert.match(f.notes.join('\n'), /c\.json was written by distgan 0\.0\.9, this is 0\.1\.0/);
    assert.deepEqual(parseConfigFile({ version: '0.1.0', dryRun: false, resumeLatestValid: false }, 'c.json', '0.1.0').notes, []);
    assert.throws(() => parseConfigFile({ worldSize: 0 }, 'c.json', '0.1.0'), /worldSize \(c\.json\): 0 is not an integer/);
  });

  test('labels name the flag, the variable, or the key and its file', () => {
    assert.equal(labelOf('batchSize', 'flag:--batch-size'), '--batch-size');
    assert.equal(labelOf('batchSize', 'env:DISTGAN_BATCH_SIZE'), 'DISTGAN_BATCH_SIZE');
    assert.equal(labelOf('batchSize', 'file:runs/x/config.json'), 'batchSize (runs/x/config.json)');
  });
});

// ---------------------------------------------------------------- --help

test('--help of launch, coordinator and worker states each default once', () => {
  const program = new Command('distgan');
  for (const register of [registerLaunch, registerCoordinator, registerWorker, registerReducer]) register(program);
  for (const cmd of program.commands) {
    for (const o of cmd.options) {
      // commander appends "(default: …)" for a default value; the descriptions already say it.
      assert.equal(o.defaultValue, undefined, `${cmd.name()} ${o.long}: commander default ${JSON.stringify(o.defaultValue)} would print a second default`);
    }
    // One help entry per option: its first line starts with "  -", continuation lines are indented further.
    const entries: string[] = [];
    for (const line of cmd.helpInformation({ error: false }).split('\n')) {
      if (/^ {2}-/.test(line)) entries.push(line);
      else if (/^ {4,}\S/.test(line) && entries.length > 0) entries[entries.length - 1] += ` ${line.trim()}`;
    }
    assert.ok(entries.length >= cmd.options.length, `${cmd.name()}: parsed ${entries.length} help entries`);
    for (const e of entries) {
      const n = (e.match(/\bdefault\b/g) ?? []).length;
      assert.ok(n <= 1, `${cmd.name()} --help says the default ${n} times: ${e}`);
    }
    for (const o of cmd.options) {
      if (o.long === '--help') continue;
      assert.match(o.description, /\bdefault\b/, `${cmd.name()} ${o.long} does not say its default`);
    }
  }
});

test('docs/configuration.md names the variable of every flag of launch, coordinator, worker and reducer', async () => {
  const doc = await readFile(join(PACKAGE_ROOT, 'docs', 'configuration.md'), 'utf8');
  const program = new Command('distgan');
  for (const register of [registerLaunch, registerCoordinator, registerWorker, registerReducer]) register(program);
  for (const cmd of program.commands) {
    for (const o of cmd.options) {
      if (o.long === '--help') continue;
      const name = envNameOf(o.flags);
      assert.ok(doc.includes(`\`${name}\``), `docs/configuration.md does not name ${name} (${cmd.name()} ${o.long})`);
    }
  }
  for (const v of ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK', 'PMI_RANK', 'PMI_SIZE', 'MPI_LOCALRANKID']) {
    assert.ok(doc.includes(`\`${v}\``), `docs/configuration.md does not name ${v}`);
  }
});
