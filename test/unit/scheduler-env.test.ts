/**
 * resolveWorkerPlacement: torchrun, MPI, Slurm and Kubernetes Indexed Job
 * environments map to rank / world size / GPU; explicit flags win, then
 * DISTGAN_ variables, then the innermost launcher; bad values are
 * ConfigErrors naming the variable and its value. masterEndpoint: torchrun's
 * MASTER_ADDR / MASTER_PORT as the coordinator's address.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { resolveWorkerPlacement as resolveWithSources, masterEndpoint, K8S_WORLD_SIZE_ENV, type PlacementFlags, type WorkerPlacement } from '../../src/transport/scheduler-env.js';
import { ConfigError } from '../../src/shared/errors.js';

/** The placement without its `sources` map (checked in their own tests below). */
function resolveWorkerPlacement(flags: PlacementFlags, env: NodeJS.ProcessEnv): Omit<WorkerPlacement, 'sources'> {
  const { sources: _sources, ...rest } = resolveWithSources(flags, env);
  return rest;
}

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
    assert.deepEqual(resolveWorkerPlacement({ gpus: [0, 1] }, {}), { source: 'flags', gpus: [0, 1] }, 'several GPUs: the worker fans out, no single GPU');
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
    // DISTGAN_WORLD_SIZE is distgan's own variable for --world-size, so it applies under an explicit rank too.
    assert.deepEqual(resolveWorkerPlacement({ rank: 0 }, k8s()), { source: 'flags', rank: 0, worldSize: 2 });
    assert.deepEqual(resolveWorkerPlacement({ worldSize: 3, gpus: [0] }, k8s()), { source: 'kubernetes', rank: 1, worldSize: 3, gpu: 0 });
  });

  test('Slurm is preferred when both are present', () => {
    assert.equal(resolveWorkerPlacement({}, { ...k8s({ [K8S_WORLD_SIZE_ENV]: undefined }), ...slurm() }).source, 'slurm');
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

describe('torchrun', () => {
  /** What torchrun sets for local process 1 of 4 on the second of two nodes. */
  const torchrun = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    RANK: '5',
    WORLD_SIZE: '8',
    LOCAL_RANK: '1',
    LOCAL_WORLD_SIZE: '4',
    MASTER_ADDR: '10.0.0.1',
    MASTER_PORT: '29500',
    ...extra,
  });

  test('RANK / WORLD_SIZE → rank and world size; LOCAL_RANK → the GPU, as torch.cuda.set_device(LOCAL_RANK)', () => {
    const p = resolveWithSources({}, torchrun());
    assert.deepEqual(p, { source: 'torchrun', rank: 5, worldSize: 8, gpu: 1, sources: { rank: 'env:RANK', worldSize: 'env:WORLD_SIZE', gpu: 'env:LOCAL_RANK' } });
  });

  test('LOCAL_RANK counts within CUDA_VISIBLE_DEVICES; one visible device is ordinal 0; none means no GPU', () => {
    assert.equal(resolveWorkerPlacement({}, torchrun({ CUDA_VISIBLE_DEVICES: '4,5,6,7' })).gpu, 1);
    assert.equal(resolveWorkerPlacement({}, torchrun({ CUDA_VISIBLE_DEVICES: '6' })).gpu, 0);
    assert.equal(resolveWorkerPlacement({}, torchrun({ CUDA_VISIBLE_DEVICES: '' })).gpu, undefined);
    rejectsWith(() => resolveWorkerPlacement({}, torchrun({ LOCAL_RANK: '2', CUDA_VISIBLE_DEVICES: '0,1' })), 'LOCAL_RANK=2', 'CUDA_VISIBLE_DEVICES', 'only 2 GPUs');
  });

  test('--gpus wins over LOCAL_RANK; --rank means no launcher rank or world size, but LOCAL_RANK still picks the GPU', () => {
    assert.equal(resolveWorkerPlacement({ gpus: [3] }, torchrun()).gpu, 3);
    assert.deepEqual(resolveWorkerPlacement({ rank: 0 }, torchrun()), { source: 'flags', rank: 0, gpu: 1 });
    assert.deepEqual(resolveWorkerPlacement({ worldSize: 6 }, torchrun()), { source: 'torchrun', rank: 5, worldSize: 6, gpu: 1 });
  });

  test('an empty variable counts as unset', () => {
    assert.deepEqual(resolveWorkerPlacement({}, { RANK: '', WORLD_SIZE: '', LOCAL_RANK: ' ' }), { source: 'none' });
    assert.deepEqual(resolveWorkerPlacement({}, { RANK: '1', WORLD_SIZE: '' }), { source: 'torchrun', rank: 1 });
  });

  test('bad values name the variable and the value', () => {
    rejectsWith(() => resolveWorkerPlacement({}, torchrun({ RANK: 'one' })), 'RANK', '"one"');
    rejectsWith(() => resolveWorkerPlacement({}, torchrun({ WORLD_SIZE: '0' })), 'WORLD_SIZE', '"0"');
    rejectsWith(() => resolveWorkerPlacement({}, torchrun({ LOCAL_RANK: '-1' })), 'LOCAL_RANK', '"-1"');
    rejectsWith(() => resolveWorkerPlacement({}, torchrun({ RANK: '8' })), 'RANK=8', 'WORLD_SIZE=8');
  });
});

describe('MPI', () => {
  test('Open MPI: OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK', () => {
    const env = { OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '1' };
    assert.deepEqual(resolveWithSources({}, env), {
      source: 'mpi',
      rank: 3,
      worldSize: 4,
      gpu: 1,
      sources: { rank: 'env:OMPI_COMM_WORLD_RANK', worldSize: 'env:OMPI_COMM_WORLD_SIZE', gpu: 'env:OMPI_COMM_WORLD_LOCAL_RANK' },
    });
  });

  test('MPICH / PMI: PMI_RANK / PMI_SIZE, MPI_LOCALRANKID for the GPU when Hydra sets it', () => {
    assert.deepEqual(resolveWorkerPlacement({}, { PMI_RANK: '2', PMI_SIZE: '3' }), { source: 'mpi', rank: 2, worldSize: 3 });
    assert.equal(resolveWorkerPlacement({}, { PMI_RANK: '2', PMI_SIZE: '3', MPI_LOCALRANKID: '0' }).gpu, 0);
    rejectsWith(() => resolveWorkerPlacement({}, { PMI_RANK: '3', PMI_SIZE: '3' }), 'PMI_RANK=3', 'PMI_SIZE=3');
  });
});

describe('precedence: flags > DISTGAN_ variables > torchrun > MPI > Slurm > Kubernetes', () => {
  const everything: NodeJS.ProcessEnv = {
    RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '0',
    OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '3', OMPI_COMM_WORLD_LOCAL_RANK: '1',
    PMI_RANK: '3', PMI_SIZE: '4',
    SLURM_PROCID: '4', SLURM_NTASKS: '5', SLURM_LOCALID: '2', SLURM_GPUS_ON_NODE: '4',
    JOB_COMPLETION_INDEX: '5',
  };
  const without = (...names: string[]): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(everything).filter(([k]) => !names.includes(k)));

  test('the innermost launcher wins, and rank and world size come from the same one', () => {
    assert.deepEqual(resolveWorkerPlacement({}, everything), { source: 'torchrun', rank: 1, worldSize: 2, gpu: 0 });
    const noTorch = without('RANK', 'WORLD_SIZE', 'LOCAL_RANK');
    assert.deepEqual(resolveWorkerPlacement({}, noTorch), { source: 'mpi', rank: 2, worldSize: 3, gpu: 1 });
    const noOmpi = without('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK');
    assert.deepEqual(resolveWorkerPlacement({}, noOmpi), { source: 'mpi', rank: 3, worldSize: 4 });
    const slurmOnly = without('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK', 'PMI_RANK', 'PMI_SIZE');
    assert.deepEqual(resolveWorkerPlacement({}, slurmOnly), { source: 'slurm', rank: 4, worldSize: 5, gpu: 2 });
  });

  test('mpirun inside a Slurm batch script: the MPI rank, not the inherited SLURM_PROCID=0', () => {
    const env = { SLURM_PROCID: '0', SLURM_NTASKS: '1', SLURM_LOCALID: '0', OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '3' };
    assert.deepEqual(resolveWorkerPlacement({}, env), { source: 'mpi', rank: 3, worldSize: 4, gpu: 3 });
  });

  test('DISTGAN_RANK / DISTGAN_WORLD_SIZE / DISTGAN_GPUS beat every launcher; flags beat them', () => {
    const env = { ...everything, DISTGAN_RANK: '6', [K8S_WORLD_SIZE_ENV]: '7', DISTGAN_GPUS: '3' };
    assert.deepEqual(resolveWithSources({}, env), {
      source: 'distgan-env',
      rank: 6,
      worldSize: 7,
      gpu: 3,
      sources: { rank: 'env:DISTGAN_RANK', worldSize: 'env:DISTGAN_WORLD_SIZE', gpu: 'env:DISTGAN_GPUS' },
    });
    assert.deepEqual(resolveWithSources({ rank: 0, worldSize: 1, gpus: [2] }, env), {
      source: 'flags',
      rank: 0,
      worldSize: 1,
      gpu: 2,
      sources: { rank: 'flag:--rank', worldSize: 'flag:--world-size', gpu: 'flag:--gpus' },
    });
    assert.deepEqual(resolveWorkerPlacement({}, { DISTGAN_GPUS: '0,1' }), { source: 'distgan-env', gpus: [0, 1] }, 'several GPUs from the variable: fan out');
  });

  test('bad DISTGAN_ values name the variable', () => {
    rejectsWith(() => resolveWorkerPlacement({}, { DISTGAN_RANK: 'x' }), 'DISTGAN_RANK', '"x"');
    rejectsWith(() => resolveWorkerPlacement({}, { DISTGAN_GPUS: '0,0' }), 'DISTGAN_GPUS', 'twice');
    rejectsWith(() => resolveWorkerPlacement({}, { DISTGAN_RANK: '3', DISTGAN_WORLD_SIZE: '3' }), 'DISTGAN_RANK=3', 'DISTGAN_WORLD_SIZE=3');
    rejectsWith(() => resolveWorkerPlacement({ rank: 3 }, { RANK: '0', WORLD_SIZE: '2', DISTGAN_WORLD_SIZE: '3' }), '--rank 3', 'DISTGAN_WORLD_SIZE=3');
  });
});

describe('MASTER_ADDR / MASTER_PORT', () => {
  test('nothing set: undefined', () => {
    assert.equal(masterEndpoint({}, 'connect'), undefined);
    assert.equal(masterEndpoint({ MASTER_ADDR: '', MASTER_PORT: '' }, 'bind'), undefined);
  });

  test('a worker connects to tcp://MASTER_ADDR:MASTER_PORT, host names included', () => {
    assert.deepEqual(masterEndpoint({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' }, 'connect'), { endpoint: 'tcp://10.0.0.1:29500', source: 'env:MASTER_ADDR+MASTER_PORT' });
    assert.equal(masterEndpoint({ MASTER_ADDR: 'node01', MASTER_PORT: '29500' }, 'connect')?.endpoint, 'tcp://node01:29500');
    assert.equal(masterEndpoint({ MASTER_ADDR: 'fd00::1', MASTER_PORT: '29500' }, 'connect')?.endpoint, 'tcp://[fd00::1]:29500');
  });

  test('the coordinator binds MASTER_ADDR when it is an IP address, every interface when it is a host name', () => {
    assert.deepEqual(masterEndpoint({ MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' }, 'bind'), { endpoint: 'tcp://127.0.0.1:29500', source: 'env:MASTER_ADDR+MASTER_PORT' });
    assert.equal(masterEndpoint({ MASTER_ADDR: 'localhost', MASTER_PORT: '29500' }, 'bind')?.endpoint, 'tcp://127.0.0.1:29500');
    assert.equal(masterEndpoint({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' }, 'bind')?.note, undefined);
    const named = masterEndpoint({ MASTER_ADDR: 'node01', MASTER_PORT: '29500' }, 'bind');
    assert.equal(named?.endpoint, 'tcp://0.0.0.0:29500');
    assert.match(named?.note ?? '', /MASTER_ADDR=node01 is a host name.*--bind/);
  });

  test('one without the other, or a bad port, is an error naming the variables', () => {
    rejectsWith(() => masterEndpoint({ MASTER_PORT: '29500' }, 'connect'), 'MASTER_PORT', 'MASTER_ADDR is not', '--connect');
    rejectsWith(() => masterEndpoint({ MASTER_ADDR: '10.0.0.1' }, 'bind'), 'MASTER_ADDR', 'MASTER_PORT is not', '--bind');
    rejectsWith(() => masterEndpoint({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: '0' }, 'connect'), 'MASTER_PORT', '"0"');
    rejectsWith(() => masterEndpoint({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: 'http' }, 'connect'), 'MASTER_PORT', '"http"');
    rejectsWith(() => masterEndpoint({ MASTER_ADDR: 'a b', MASTER_PORT: '1' }, 'connect'), 'MASTER_ADDR', '"a b"');
  });
});
