/**
 * deploy/slurm/distgan.sbatch on a real one-node Slurm (Debian's slurm-wlm +
 * munge), started in a temp folder by scripts/slurm-cluster.sh with its own
 * munged, ports and state, and stopped at the end whatever happens.
 *
 *  1. A tiny run (ring8, mlp, 2 tasks, no GPU) under `sbatch --wait` exits 0
 *     and leaves summary.json, the final checkpoint and sample grids.
 *  2. The same script, interrupted twice: `scontrol requeue` (Slurm SIGTERMs
 *     every process of the job) and then a preemption notice (USR1 to the batch
 *     shell, as `--signal=B:USR1@60` sends it), after which the script requeues
 *     itself. Each rerun resumes the run folder, and the final trainer state is
 *     bit-identical (stateSha256) to an uninterrupted `distgan launch` of the
 *     same options.
 *  3. Stopping the cluster leaves none of its daemons, job steps or distgan
 *     processes alive.
 *
 * Needs root (slurmd starts tasks as the submitting user; CI runs as root) and
 * fails, saying so, otherwise. Timing on 2 cores: about 1.5 minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { readCheckpoint } from '../../src/shared/checkpoint.js';
import { alive, ROOT, runCli, tempDir } from '../helpers/cli.js';

const CLUSTER = join(ROOT, 'scripts', 'slurm-cluster.sh');
const SBATCH = join(ROOT, 'deploy', 'slurm', 'distgan.sbatch');
/** Two tasks on the one node, one CPU each; the header's GPU request is dropped on the command line. */
const SHAPE = ['--nodes=1', '--ntasks=2', '--ntasks-per-node=2', '--cpus-per-task=1', '--gpus-per-task=0'];
/** Training options shared by the Slurm runs (DISTGAN_EXTRA_ARGS) and the reference `launch`. */
const TINY = ['--model', 'mlp', '--width', '0.25', '--batch-size', '64'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (or kills it after timeoutMs), capturing its output. */
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '0.0.0.0', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 200 ms until it returns a value, or throws `what` at the deadline. */
async function until<T>(what: () => string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what()}`);
    await sleep(200);
  }
}

/**
 * Pids of our cluster's processes: slurmd's children carry SLURM_CLUSTER_DIR=cluster
 * (set by slurm-cluster.sh), and every daemon, job step and distgan process of
 * the test names a path under `work` on its command line.
 */
function processesOf(cluster: string, work: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, 'latin1');
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1');
      if (env.split('\0').includes(`SLURM_CLUSTER_DIR=${cluster}`) || cmd.includes(work)) found.push(Number(name));
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return found;
}

const pidIn = (file: string): number => Number(readFileSync(file, 'utf8').trim());

test('distgan.sbatch on a real one-node Slurm', { timeout: 240_000 }, async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test starts slurmctld, slurmd and munged and must run as root (CI does); run it as root');
  for (const bin of ['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/munged', '/usr/bin/sbatch']) {
    assert.ok(existsSync(bin), `${bin} is missing: apt-get install -y slurm-wlm munge`);
  }
  const work = realpathSync(await tempDir('distgan-slurm-'));
  const cluster = join(work, 'cluster');
  const keys = join(work, 'keys');
  let daemons: number[] = [];
  try {
    const started = await run('bash', [CLUSTER, 'start', cluster], { timeoutMs: 60_000 });
    assert.equal(started.code, 0, `slurm-cluster.sh start failed:\n${started.stderr}`);
    assert.match(started.stdout, /^export SLURM_CONF=.*slurm\.conf$/m);
    daemons = ['slurmctld.pid', 'slurmd.pid', 'munge/munged.pid'].map((f) => pidIn(join(cluster, f)));
    const slurmEnv: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: join(cluster, 'slurm.conf') };
    const again = await run('bash', [CLUSTER, 'start', cluster], { timeoutMs: 30_000 });
    assert.equal(again.code, 0, `a second start is a no-op:\n${again.stderr}`);
    assert.match(again.stderr, /already running/);

    const kg = await runCli(['keygen', '--out', keys, '--workers', '2'], { timeoutMs: 30_000 });
    assert.equal(kg.code, 0, kg.stderr);

    /** Environment for one sbatch of the project's script. */
    const jobEnv = async (out: string, steps: number, extra: string[]): Promise<NodeJS.ProcessEnv> => ({
      ...slurmEnv,
      DISTGAN_HOME: ROOT,
      DISTGAN_KEYS: keys,
      DISTGAN_BACKEND: 'wasm',
      DISTGAN_GPUS_PER_TASK: '0',
      DISTGAN_DATASET: 'ring8',
      DISTGAN_STEPS: String(steps),
      DISTGAN_PORT: String(await freePort()),
      DISTGAN_METRICS_PORT: '0',
      DISTGAN_EXTRA_ARGS: [...TINY, ...extra].join(' '),
      DISTGAN_OUT: out,
    });
    const jobInfo = async (id: string): Promise<{ state: string; restarts: number }> => {
      const r = await run('scontrol', ['show', 'job', '-o', id], { env: slurmEnv, timeoutMs: 10_000 });
      return { state: /JobState=(\w+)/.exec(r.stdout)?.[1] ?? `unknown (${r.stderr.trim()})`, restarts: Number(/Restarts=(\d+)/.exec(r.stdout)?.[1] ?? -1) };
    };
    const log = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '(no job output yet)');

    await t.test('a tiny run under sbatch --wait exits 0 with summary, checkpoint and samples', { timeout: 90_000 }, async (st) => {
      const out = join(work, 'tiny');
      const output = join(work, 'tiny.out');
      const t0 = performance.now();
      const r = await run('sbatch', ['--wait', ...SHAPE, `--output=${output}`, SBATCH], { env: await jobEnv(out, 100, ['--sample-every', '50']), cwd: work, timeoutMs: 80_000 });
      const seconds = (performance.now() - t0) / 1000;
      assert.equal(r.code, 0, `sbatch --wait exited ${r.code}\n${r.stderr}\njob output:\n${log(output)}`);
      st.diagnostic(`tiny sbatch --wait: ${seconds.toFixed(1)} s`);
      assert.ok(existsSync(join(out, 'summary.json')), 'summary.json');
      const ck = await readCheckpoint(join(out, 'checkpoints', 'step-00000100.ckpt'));
      assert.equal(ck.header.step, 100);
      const samples = await readdir(join(out, 'samples'));
      assert.ok(samples.includes('step-00000050.png') && samples.includes('step-00000100.png'), `samples: ${samples.join(' ')}`);
      assert.match(log(output), /all 2 workers ready/);
      // The default placement: one reducer per node owns the shards (sharded reduction), started by the script's own srun step.
      assert.match(log(output), /sharded reduction: 1 shard owners at tcp:\/\/\S+ \(the reducer of shard 0/);
      assert.match(log(output), /reducer done: run over/);
    });

    await t.test('requeued twice (scontrol requeue, then a USR1 preemption notice), the run resumes and ends bit-identical to an uninterrupted one', { timeout: 180_000 }, async (st) => {
      // Long enough that both interruptions land mid-run (the first checkpoint is at 50, the
      // USR1 follows the first checkpoint after the resume, about step 100-150 at most).
      const steps = 400;
      const extra = ['--checkpoint-every', '50', '--sample-every', '200'];
      const out = join(work, 'requeued');
      const output = join(work, 'requeued.out');
      const t0 = performance.now();
      const sub = await run('sbatch', ['--parsable', ...SHAPE, `--output=${output}`, SBATCH], { env: await jobEnv(out, steps, extra), cwd: work, timeoutMs: 30_000 });
      assert.equal(sub.code, 0, sub.stderr);
      const id = sub.stdout.trim().split(';')[0]!;
      const checkpoints = async (): Promise<number[]> =>
        (await readdir(join(out, 'checkpoints')).catch(() => [] as string[])).flatMap((f) => /^step-(\d+)\.ckpt$/.exec(f)?.slice(1).map(Number) ?? []);
      const newest = async (): Promise<number> => Math.max(0, ...(await checkpoints()));

      // 1. Once the first checkpoint is there: `scontrol requeue` (SIGTERM to every process of the job).
      await until(() => `a first checkpoint of job ${id}; output:\n${log(output)}`, 60_000, async () => ((await newest()) > 0 ? true : undefined));
      const rq = await run('scontrol', ['requeue', id], { env: slurmEnv, timeoutMs: 10_000 });
      assert.equal(rq.code, 0, rq.stderr);

      // The reference: the same options, uninterrupted, while Slurm holds the requeued job back.
      const refOut = join(work, 'reference');
      const refRun = runCli(['launch', '--workers', '2', '--backend', 'wasm', '--dataset', 'ring8', '--steps', String(steps), ...TINY, ...extra, '--metrics-port', '0', '--log-format', 'plain', '--out', refOut], { timeoutMs: 150_000 });

      // 2. The rerun resumes; once it has checkpointed beyond where it resumed, a preemption notice (USR1, batch shell only).
      const resumedAt = await until(() => `job ${id} to resume after scontrol requeue; output:\n${log(output)}`, 90_000, () => {
        const m = new RegExp(`restart 1 of job \\d+: resuming .*\\n[\\s\\S]*?steps (\\d+)→${steps}`).exec(log(output));
        return m ? Number(m[1]) : undefined;
      });
      await until(() => `a checkpoint beyond step ${resumedAt} after the first requeue; output:\n${log(output)}`, 60_000, async () => ((await newest()) > resumedAt ? true : undefined));
      const usr1 = await run('scancel', ['--batch', '--signal=USR1', id], { env: slurmEnv, timeoutMs: 10_000 });
      assert.equal(usr1.code, 0, usr1.stderr);

      // 3. The script requeues itself; the second rerun finishes the run.
      const final = await until(() => `job ${id} to complete; output:\n${log(output)}`, 120_000, async () => {
        const info = await jobInfo(id);
        return info.state === 'COMPLETED' || info.state === 'FAILED' || info.state === 'CANCELLED' ? info : undefined;
      });
      st.diagnostic(`requeued job: ${((performance.now() - t0) / 1000).toFixed(1)} s from submission to ${final.state}, ${final.restarts} restarts`);
      const text = log(output);
      assert.equal(final.state, 'COMPLETED', text);
      assert.equal(final.restarts, 2, text);
      assert.match(text, /interrupted by SIGTERM/, 'scontrol requeue reached the coordinator as SIGTERM');
      assert.match(text, /SIGUSR1: preemption notice; checkpointing and stopping/);
      assert.match(text, /distgan\.sbatch: requeueing job \d+/);
      assert.match(text, /restart 2 of job \d+: resuming/);
      assert.ok(existsSync(join(out, 'summary.json')), 'summary.json after the last rerun');

      const ref = await refRun;
      assert.equal(ref.code, 0, `reference launch failed:\n${ref.stderr.slice(-3000)}`);
      const [a, b] = await Promise.all([readCheckpoint(out), readCheckpoint(refOut)]);
      assert.equal(a.header.step, steps);
      assert.equal(b.header.step, steps);
      assert.equal(a.header.optimizerStep, b.header.optimizerStep);
      assert.equal(a.stateSha256, b.stateSha256, 'the requeued run ends bit-identical to the uninterrupted one');
      st.diagnostic(`final state sha256 ${a.stateSha256} (requeued) = ${b.stateSha256} (uninterrupted launch)`);
    });
  } finally {
    const stopped = await run('bash', [CLUSTER, 'stop', cluster], { timeoutMs: 90_000 });
    const leftovers = processesOf(cluster, work);
    await rm(work, { recursive: true, force: true });
    assert.equal(stopped.code, 0, `slurm-cluster.sh stop failed:\n${stopped.stderr}`);
    for (const pid of daemons) assert.ok(!alive(pid), `daemon pid ${pid} is still alive after stop`);
    assert.deepEqual(leftovers, [], `processes of the test cluster still alive after stop: ${leftovers.join(' ')}`);
  }
});
