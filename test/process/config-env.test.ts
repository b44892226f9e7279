/**
 * Configuration from the outside, through the real CLI: a run's config.json
 * repeats the run bit for bit; workers started with only torchrun's variables
 * (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) join a coordinator that took its
 * address and world size from the same variables; --dry-run names the layer
 * (default, config file, variable, flag) each value came from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { runCli, startCli, tempDir } from '../helpers/cli.js';
import { readCheckpoint } from '../../src/shared/checkpoint.js';

const tiny = ['--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--batch-size', '64', '--backend', 'wasm', '--metrics-port', '0', '--steps', '8'];

/** Variables of the test runner's own environment that would otherwise take part. */
const CLEAN: NodeJS.ProcessEnv = Object.fromEntries(
  Object.keys(process.env)
    .filter((k) => /^(DISTGAN_(?!TEST$)|RANK$|WORLD_SIZE$|LOCAL_RANK$|MASTER_(ADDR|PORT)$|OMPI_COMM_WORLD_|PMI_|MPI_LOCALRANKID$|SLURM_|JOB_COMPLETION_INDEX$)/.test(k))
    .map((k) => [k, undefined]),
);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

test("launch --config <run>/config.json --out Y repeats the run bit for bit, and never reuses the run's folder", { timeout: 90_000 }, async () => {
  const dir = await tempDir();
  try {
    const x = join(dir, 'X');
    const first = await runCli(['launch', ...tiny, '--workers', '2', '--out', x], { env: CLEAN, timeoutMs: 60_000 });
    assert.equal(first.code, 0, first.stderr.slice(-2000));
    const record = join(x, 'config.json');

    const y = join(dir, 'Y');
    const again = await runCli(['launch', '--config', record, '--out', y], { env: CLEAN, timeoutMs: 60_000 });
    assert.equal(again.code, 0, again.stderr.slice(-2000));
    assert.match(again.stderr, /records a run that wrote to .*X; that folder is not reused/);
    const [a, b] = [await readCheckpoint(x), await readCheckpoint(y)];
    assert.equal(b.header.step, 8);
    assert.equal(b.stateSha256, a.stateSha256, 'the same final state, bit for bit');
    const [ca, cb] = [JSON.parse(await readFile(record, 'utf8')), JSON.parse(await readFile(join(y, 'config.json'), 'utf8'))] as Record<string, unknown>[];
    assert.deepEqual({ ...cb, out: ca!.out }, ca, 'the same resolved configuration and world size, out aside');

    // Without --out: a new folder, not X's (the dry run shows where it would go).
    const dry = await runCli(['launch', '--config', record, '--dry-run'], { env: CLEAN });
    assert.equal(dry.code, 0, dry.stderr);
    const printed = JSON.parse(dry.stdout) as { workers: number; config: { out: string }; sources: Record<string, string> };
    assert.notEqual(printed.config.out, x);
    assert.equal(printed.sources.out, 'default');
    assert.equal(printed.workers, 2);
    assert.equal(printed.sources.workers, `file:${record}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("workers with only torchrun's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT join a coordinator configured the same way", { timeout: 90_000 }, async () => {
  const dir = await tempDir();
  const port = await freePort();
  const torchrun = { ...CLEAN, WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
  const out = join(dir, 'run');
  const coord = startCli(['coordinator', ...tiny, '--log-format', 'plain', '--join-timeout', '60', '--out', out], { env: torchrun, timeoutMs: 80_000 });
  const workers: ReturnType<typeof startCli>[] = [];
  try {
    await coord.waitFor(new RegExp(`coordinator listening on tcp://127\\.0\\.0\\.1:${port}`), 30_000);
    for (const rank of [1, 0]) {
      workers.push(startCli(['worker'], { env: { ...torchrun, RANK: String(rank), DISTGAN_BACKEND: 'wasm' }, timeoutMs: 80_000 }));
    }
    const [w1, w0] = await Promise.all(workers.map((w) => w.done));
    const c = await coord.done;
    assert.equal(c.code, 0, c.stderr.slice(-2000));
    assert.equal(w1!.code, 0, w1!.stderr.slice(-2000));
    assert.equal(w0!.code, 0, w0!.stderr.slice(-2000));
    assert.match(w1!.stderr, /joined as rank 1 of 2/, 'RANK=1 is rank 1');
    assert.match(w0!.stderr, /joined as rank 0 of 2/);
    assert.match(w1!.stderr, /requested \(--backend wasm\)/, 'DISTGAN_BACKEND=wasm reached the backend');
    assert.equal((await readCheckpoint(out)).header.step, 8);
  } finally {
    for (const p of [coord, ...workers]) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('--dry-run names the source of every value; bad files and variables are refused by name', { timeout: 60_000 }, async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'run.yaml');
    await writeFile(file, 'steps: 7\nseed: 3\nlr: 0.001\nbatchSize: 32\nworldSize: 3\n');
    const dry = await runCli(['launch', '--config', file, '--lr', '0.0005', '--dry-run', '--out', join(dir, 'never')], {
      env: { ...CLEAN, DISTGAN_SEED: '5', DISTGAN_BATCH_NORM: '0' },
    });
    assert.equal(dry.code, 0, dry.stderr);
    const p = JSON.parse(dry.stdout) as { command: string; workers: number; gpus: null; config: Record<string, unknown>; sources: Record<string, string> };
    // The existing keys stay; `sources` is added.
    assert.equal(p.command, 'launch');
    assert.equal(p.gpus, null);
    const got = (k: string): [unknown, string | undefined] => [k === 'workers' ? p.workers : p.config[k], p.sources[k]];
    assert.deepEqual(got('width'), [1, 'default']);
    assert.deepEqual(got('steps'), [7, `file:${file}`]);
    assert.deepEqual(got('batchSize'), [32, `file:${file}`]);
    assert.deepEqual(got('workers'), [3, `file:${file}`]);
    assert.deepEqual(got('seed'), [5, 'env:DISTGAN_SEED']);
    assert.deepEqual(got('batchNorm'), [false, 'env:DISTGAN_BATCH_NORM']);
    assert.deepEqual(got('lr'), [0.0005, 'flag:--lr']);
    assert.deepEqual(got('out'), [join(dir, 'never'), 'flag:--out']);
    assert.equal(existsSync(join(dir, 'never')), false, '--dry-run writes nothing');

    // The coordinator: world size and bind from torchrun's variables, named as such.
    const coord = await runCli(['coordinator', '--dry-run'], { env: { ...CLEAN, WORLD_SIZE: '4', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29511' } });
    assert.equal(coord.code, 0, coord.stderr);
    const cp = JSON.parse(coord.stdout) as { bind: string; worldSize: number; sources: Record<string, string> };
    assert.deepEqual([cp.bind, cp.sources.bind, cp.worldSize, cp.sources.worldSize], ['tcp://127.0.0.1:29511', 'env:MASTER_ADDR+MASTER_PORT', 4, 'env:WORLD_SIZE']);

    // A worker: --connect is optional under MASTER_ADDR/MASTER_PORT; without either, the error names both ways.
    const wd = await runCli(['worker', '--dry-run'], { env: { ...CLEAN, RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1', MASTER_ADDR: 'node01', MASTER_PORT: '29500' } });
    assert.equal(wd.code, 0, wd.stderr);
    const wp = JSON.parse(wd.stdout) as { connect: string; rank: number; worldSize: number; gpu: number; sources: Record<string, string> };
    assert.deepEqual([wp.connect, wp.rank, wp.worldSize, wp.gpu], ['tcp://node01:29500', 1, 2, 1]);
    assert.deepEqual([wp.sources.rank, wp.sources.gpu], ['env:RANK', 'env:LOCAL_RANK']);
    const none = await runCli(['worker'], { env: CLEAN });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give --connect tcp:\/\/HOST:PORT.*or set MASTER_ADDR and MASTER_PORT/);

    const refused: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['launch', '--config', join(dir, 'bad.json'), '--dry-run'], {}, /unknown key 'batch-size' in .*bad\.json \(did you mean 'batchSize'\?/],
      [['launch', '--dry-run'], { DISTGAN_NO_BATCH_NORM: '1' }, /DISTGAN_NO_BATCH_NORM is not read.*DISTGAN_BATCH_NORM=0/],
      [['launch', '--dry-run'], { DISTGAN_BATCH_SIZE: 'big' }, /DISTGAN_BATCH_SIZE: "big" is not an integer/],
    ];
    await writeFile(join(dir, 'bad.json'), '{"batch-size": 32}');
    for (const [args, env, re] of refused) {
      const r = await runCli(args, { env: { ...CLEAN, ...env } });
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, re);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
