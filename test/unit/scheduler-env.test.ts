/**
 * resolveWorkerPlacement: Slurm and Kubernetes Indexed Job environments map
 * to rank / world size / GPU; explicit flags win; bad values are ConfigErrors
 * naming the variable and its value.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { resolveWorkerPlacement, K8S_WORLD_SIZE_ENV } from '../../src/shared/scheduler-env.js';
import { ConfigError } from '../../src/shared/errors.js';

/** The variables srun sets for task 5 of 8 (second node, local task 1) with 4 GPUs per node. */
const slurm = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  SLURM_JOB_ID: '1234',
  SLURM_PROCID: '5',
  SLURM_NTASKS: '8',
  SLURM_LOCALID: '1',
  SLURM_NODEID: '1',
  ...extra,
});

function rejectsWith(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe('nothing set', () => {
  test('no flags and no scheduler: source none, nothing placed', () => {
    assert.deepEqual(resolveWorkerPlacement({}, {}), { source: 'none' });
    assert.deepEqual(resolveWorkerPlacement({}, { CUDA_VISIBLE_DEVICES: '0,1', HOME: '/root' }), { source: 'none' });
  });

  test('flags alone', () => {
    assert.deepEqual(resolveWorkerPlacement({ rank: 1, worldSize: 4, gpus: [3] }, {}), { source: 'flags', rank: 1, worldSize: 4, gpu: 3 });
    assert.deepEqual(resolveWorkerPlacement({ gpus: [0, 1] }, {}), { source: 'flags' }, 'several GPUs: the worker fans out, no single GPU');
  });
});

describe('Slurm', () => {
  test('rank and world size from SLURM_PROCID / SLURM_NTASKS', () => {
    assert.deepEqual(resolveWorkerPlacement({}, slurm()), { source: 'slurm', rank: 5, worldSize: 8 });
  });

  test('SLURM_LOCALID indexes a CUDA_VISIBLE_DEVICES list (ordinal within it)', () => {
    assert.equal(resolveWorkerPlacement({}, slurm({ CUDA_VISIBLE_DEVICES: '0,1,2,3' })).gpu, 1);
    // Physical ids or UUIDs in the list do not matter: the ordinal does.
    assert.equal(resolveWorkerPlacement({}, slurm({ CUDA_VISIBLE_DEVICES: '4,5,6,7' })).gpu, 1);
    assert.equal(resolveWorkerPlacement({}, slurm({ CUDA_VISIBLE_DEVICES: 'GPU-aa,GPU-bb' })).gpu, 1);
  });

  test('--gpus-per-task=1: one visible device is ordinal 0 whatever SLURM_LOCALID is', () => {
    assert.equal(resolveWorkerPlacement({}, slurm({ SLURM_LOCALID: '3', CUDA_VISIBLE_DEVICES: '3' })).gpu, 0);
  });

  test('SLURM_STEP_GPUS (physical ids) when CUDA_VISIBLE_DEVICES is unset, then SLURM_JOB_GPUS', () => {
    assert.equal(resolveWorkerPlacement({}, slurm({ SLURM_STEP_GPUS: '4,5,6,7' })).gpu, 5);
    assert.equal(resolveWorkerPlacement({}, slurm({ SLURM_JOB_GPUS: '2,6' })).gpu, 6);
    assert.equal(resolveWorkerPlacement({}, slurm({ SLURM_STEP_GPUS: '7', SLURM_LOCALID: '0' })).gpu, 7);
  });

  test('only SLURM_GPUS_ON_NODE: the local id is the GPU', () => {
    assert.equal(resolveWorkerPlacement({}, slurm({ SLURM_GPUS_ON_NODE: '4' })).gpu, 1);
  });

  test('no GPUs allocated: no gpu', () => {
    for (const extra of [{}, { CUDA_VISIBLE_DEVICES: '' }, { CUDA_VISIBLE_DEVICES: 'NoDevFiles' }, { SLURM_STEP_GPUS: '' }, { SLURM_GPUS_ON_NODE: '0' }]) {
      assert.equal(resolveWorkerPlacement({}, slurm(extra)).gpu, undefined, JSON.stringify(extra));
    }
  });

  test('explicit flags win over Slurm', () => {
    const env = slurm({ CUDA_VISIBLE_DEVICES: '0,1,2,3' });
    assert.deepEqual(resolveWorkerPlacement({ rank: 0, worldSize: 2, gpus: [2] }, env), { source: 'flags', rank: 0, worldSize: 2, gpu: 2 });
    // --rank alone: world size is not taken from SLURM_NTASKS (no mixing), the GPU still comes from Slurm.
    assert.deepEqual(resolveWorkerPlacement({ rank: 9 }, env), { source: 'flags', rank: 9, gpu: 1 });
    // --world-size alone overrides SLURM_NTASKS but keeps SLURM_PROCID.
    assert.deepEqual(resolveWorkerPlacement({ worldSize: 6 }, env), { source: 'slurm', rank: 5, worldSize: 6, gpu: 1 });
    // A bad SLURM_PROCID does not matter when --rank is given.
    assert.equal(resolveWorkerPlacement({ rank: 0 }, slurm({ SLURM_PROCID: 'x' })).rank, 0);
  });

  test('bad values name the variable and the value', () => {
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_PROCID: 'abc' })), 'SLURM_PROCID', '"abc"');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_PROCID: '-1' })), 'SLURM_PROCID', '"-1"');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_NTASKS: '0' })), 'SLURM_NTASKS', '"0"');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_NTASKS: '4.5' })), 'SLURM_NTASKS', '"4.5"');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_LOCALID: 'one' })), 'SLURM_LOCALID', '"one"');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_NTASKS: '5' })), 'SLURM_PROCID=5', 'SLURM_NTASKS=5');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_LOCALID: '4', CUDA_VISIBLE_DEVICES: '0,1,2,3' })), 'SLURM_LOCALID=4', 'CUDA_VISIBLE_DEVICES', 'only 4 GPUs');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_STEP_GPUS: '0,x' })), 'SLURM_STEP_GPUS', '"x"');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_LOCALID: undefined, CUDA_VISIBLE_DEVICES: '0,1' })), 'SLURM_LOCALID is not set');
    rejectsWith(() => resolveWorkerPlacement({}, slurm({ SLURM_LOCALID: '2', SLURM_GPUS_ON_NODE: '2' })), 'SLURM_LOCALID=2', 'SLURM_GPUS_ON_NODE=2');
  });
});

describe('Kubernetes Indexed Job', () => {
  const k8s = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    KUBERNETES_SERVICE_HOST: '10.96.0.1',
    JOB_COMPLETION_INDEX: '1',
    [K8S_WORLD_SIZE_ENV]: '2',
    ...extra,
  });

  test('rank from JOB_COMPLETION_INDEX, world size from DISTGAN_WORLD_SIZE, no GPU pinning', () => {
    assert.equal(K8S_WORLD_SIZE_ENV, 'DISTGAN_WORLD_SIZE');
    assert.deepEqual(resolveWorkerPlacement({}, k8s()), { source: 'kubernetes', rank: 1, worldSize: 2 });
    assert.deepEqual(resolveWorkerPlacement({}, k8s({ [K8S_WORLD_SIZE_ENV]: undefined })), { source: 'kubernetes', rank: 1 });
    assert.equal(resolveWorkerPlacement({}, k8s({ CUDA_VISIBLE_DEVICES: '0' })).gpu, undefined);
  });

  test('explicit flags win', () => {
    assert.deepEqual(resolveWorkerPlacement({ rank: 0 }, k8s()), { source: 'flags', rank: 0 });
    assert.deepEqual(resolveWorkerPlacement({ worldSize: 3, gpus: [0] }, k8s()), { source: 'kubernetes', rank: 1, worldSize: 3, gpu: 0 });
  });

  test('Slurm is preferred when both are present', () => {
    assert.equal(resolveWorkerPlacement({}, { ...k8s(), ...slurm() }).source, 'slurm');
  });

  test('bad values name the variable and the value', () => {
    rejectsWith(() => resolveWorkerPlacement({}, k8s({ JOB_COMPLETION_INDEX: 'a' })), 'JOB_COMPLETION_INDEX', '"a"');
    rejectsWith(() => resolveWorkerPlacement({}, k8s({ [K8S_WORLD_SIZE_ENV]: 'two' })), 'DISTGAN_WORLD_SIZE', '"two"');
    rejectsWith(() => resolveWorkerPlacement({}, k8s({ JOB_COMPLETION_INDEX: '2' })), 'JOB_COMPLETION_INDEX=2', 'DISTGAN_WORLD_SIZE=2');
  });
});

test('bad flags name the flag', () => {
  rejectsWith(() => resolveWorkerPlacement({ rank: -1 }, {}), '--rank');
  rejectsWith(() => resolveWorkerPlacement({ rank: 1.5 }, {}), '--rank');
  rejectsWith(() => resolveWorkerPlacement({ worldSize: 0 }, {}), '--world-size');
  rejectsWith(() => resolveWorkerPlacement({ gpus: [] }, {}), '--gpus');
  rejectsWith(() => resolveWorkerPlacement({ gpus: [0, -2] }, {}), '--gpus');
  rejectsWith(() => resolveWorkerPlacement({ rank: 2, worldSize: 2 }, {}), '--rank 2', '--world-size 2');
});
