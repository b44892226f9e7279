import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JOIN_PROBE_MS, initialState, step, type Action, type Event, type MachineOptions, type MachineState } from '../../src/coordinator/machine.js';
import { MsgType, PROTOCOL_VERSION, type HelloMsg, type ReadyMsg } from '../../src/shared/protocol.js';
import { DistganError, ReplicaDivergedError } from '../../src/shared/errors.js';
import { phaseTable, registerPhase } from '../../src/shared/gan/phases.js';
import { fixed } from '../../src/coordinator/membership/fixed.js';

const OPTS: MachineOptions = {
  worldSize: 2,
  startStep: 0,
  targetSteps: 2,
  checksumEvery: 1,
  joinTimeoutMs: 10_000,
  stepTimeoutMs: 5_000,
  modelFingerprint: 'model-fp',
  datasetFingerprint: 'data-fp',
  version: '0.1.0',
  guard: { normFactor: 1000, normMax: 1e6 },
  onBadGradient: 'fail',
  sampleEvery: 0,
  checkpointEvery: 0,
  phases: phaseTable(),
  membership: fixed,
};

/** A contribution the guard accepts. */
const OK = { norm: 1 };

const hello = (rank = -1, protocol = PROTOCOL_VERSION): HelloMsg => ({ t: MsgType.Hello, protocol, version: '0.1.0', host: 'h', pid: 100 + rank, backend: 'wasm', backendReason: '', rank });
const ready = (rank: number, data = 'data-fp'): ReadyMsg => ({ t: MsgType.Ready, rank, modelFingerprint: 'model-fp', datasetFingerprint: data, datasetCount: 10 });

/** Drives the machine with a fake clock, collecting actions. */
function drive(events: Array<[Event, number]>, opts = OPTS): { state: MachineState; actions: Action[] } {
  let state = initialState(opts, 0);
  const actions: Action[] = [];
  for (const [ev, now] of events) {
    const t = step(state, ev, now);
    state = t.state;
    actions.push(...t.actions);
  }
  return { state, actions };
}

const types = (a: Action[]): string[] => a.filter((x) => x.type !== 'log').map((x) => x.type);

const joinBoth: Array<[Event, number]> = [
  [{ type: 'hello', identity: 'a', msg: hello() }, 1],
  [{ type: 'hello', identity: 'b', msg: hello() }, 2],
  [{ type: 'ready', identity: 'a', msg: ready(0) }, 3],
  [{ type: 'ready', identity: 'b', msg: ready(1) }, 4],
];

test('join assigns ranks in order and starts step 0 once all are ready', () => {
  const { state, actions } = drive(joinBoth);
  assert.deepEqual(types(actions), ['welcome', 'welcome', 'joined', 'joined', 'init', 'start-phase']);
  assert.equal(state.phase, 'training');
  assert.equal(state.stepPhase, 'd');
  assert.equal(state.deadline, 4 + 5_000);
  assert.deepEqual(state.members.map((m) => m?.identity), ['a', 'b']);
});

test('a full run: D then G each step, checksums compared, then finish and done', () => {
  const r = (id: string, phase: 'd' | 'g', s: number, checksum?: string): [Event, number] => [{ type: 'result', identity: id, phase, step: s, check: OK, ...(checksum ? { checksum } : {}) }, 10];
  const { state, actions } = drive([
    ...joinBoth,
    r('a', 'd', 0), r('b', 'd', 0), r('a', 'g', 0), r('b', 'g', 0),
    r('a', 'd', 1, 'x'), r('b', 'd', 1, 'x'), r('b', 'g', 1), r('a', 'g', 1),
    [{ type: 'finished', identity: 'a', step: 2, checksum: 'y' }, 20],
    [{ type: 'finished', identity: 'b', step: 2, checksum: 'y' }, 21],
  ]);
  assert.deepEqual(types(actions), [
    'welcome', 'welcome', 'joined', 'joined', 'init', 'start-phase',
    'reduce', 'start-phase', 'reduce', 'step-done', 'start-phase',
    'verify-checksums', 'reduce', 'start-phase', 'reduce', 'step-done', 'finish',
    'verify-checksums', 'sample', 'checkpoint', 'export', 'done',
  ]);
  assert.equal(state.phase, 'done');
  const sd = actions.filter((a) => a.type === 'start-phase' && a.first) as Array<Extract<Action, { type: 'start-phase' }>>;
  assert.deepEqual(sd.map((a) => a.checksum), [false, true], 'no checksum before the first update');
});

test('late and duplicate answers are ignored', () => {
  const { state, actions } = drive([
    ...joinBoth,
    [{ type: 'result', identity: 'a', phase: 'd', step: 0, check: OK }, 5],
    [{ type: 'result', identity: 'a', phase: 'd', step: 0, check: OK }, 6],
    [{ type: 'result', identity: 'a', phase: 'g', step: 0, check: OK }, 7],
    [{ type: 'result', identity: 'zz', phase: 'd', step: 0, check: OK }, 8],
  ]);
  assert.equal(types(actions).includes('reduce'), false);
  assert.deepEqual(state.awaiting, [1]);
});

test('a silent rank fails the run at the step deadline, naming it', () => {
  const { state, actions } = drive([
    ...joinBoth,
    [{ type: 'result', identity: 'a', phase: 'd', step: 0, check: OK }, 100],
    [{ type: 'tick' }, 5_003],
    [{ type: 'tick' }, 5_004],
  ]);
  const f = actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.ok(f, 'failed');
  assert.equal(f.lostRank, 1);
  assert.match(f.error.message, /rank 1 \(h pid 99\) did not answer the D phase of step 0 within 5 s/);
  assert.equal(f.error.code, 'DISTGAN_E_WORKER_FAILED');
  assert.equal(state.phase, 'failed');
  assert.equal(step(state, { type: 'tick' }, 99_999).actions.length, 0, 'a failed machine does nothing more');
});

test('sharded: at the deadline, shard owners that hold answered ranks back are blamed, not those ranks', () => {
  // Both ranks answered; the owners never reported rank 1's parts: the owner is named.
  const inside = { ranks: [1], owners: 'the reducer of shard 1 (h2 pid 7)' };
  const all = drive([
    ...joinBoth,
    [{ type: 'result', identity: 'a', phase: 'd', step: 0, check: OK }, 100],
    [{ type: 'tick', inside }, 5_010],
  ]).actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.equal(all.error.code, 'DISTGAN_E_REDUCER_LOST');
  assert.match(all.error.message, /the D phase of step 0 waited on the reducer of shard 1 \(h2 pid 7\) \(the ranks' parts or the averaged update\) for 5 s/);
  assert.equal(all.lostRank, undefined, 'no rank is blamed');
  // Rank 1 never answered and rank 0 waits on an owner (the owner lives on rank 1's lost host): rank 1 is named, the owner noted.
  const one = drive([
    ...joinBoth,
    [{ type: 'tick', inside: { ranks: [0], owners: 'the reducer of shard 1 (h2 pid 7)' } }, 5_010],
  ]).actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.equal(one.error.code, 'DISTGAN_E_WORKER_FAILED');
  assert.equal(one.lostRank, 1);
  assert.match(one.error.message, /^rank 1 \(h pid 99\) did not answer .*; the reducer of shard 1 \(h2 pid 7\) also had not reported$/);
  assert.doesNotMatch(one.error.message, /rank 0/);
});

test('the join deadline says how many workers are missing', () => {
  const { actions } = drive([
    [{ type: 'hello', identity: 'a', msg: hello() }, 1],
    [{ type: 'ready', identity: 'a', msg: ready(0) }, 2],
    [{ type: 'tick' }, 10_001],
  ]);
  const f = actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.match(f.error.message, /join deadline \(10 s, --join-timeout\) passed: 1 of 2 workers never joined/);
});

test('handshake refusals: protocol version, dataset fingerprint, taken rank', () => {
  const a = drive([[{ type: 'hello', identity: 'a', msg: hello(-1, PROTOCOL_VERSION + 1) }, 1]]).actions;
  assert.match((a.find((x) => x.type === 'refuse') as { reason: string }).reason, new RegExp(`protocol version ${PROTOCOL_VERSION + 1} differs`));
  const b = drive([
    [{ type: 'hello', identity: 'a', msg: hello() }, 1],
    [{ type: 'ready', identity: 'a', msg: ready(0, 'other-data') }, 2],
  ]);
  assert.match((b.actions.find((x) => x.type === 'refuse') as { reason: string }).reason, /dataset fingerprint .* differs .* not the same data/);
  assert.equal(b.state.members[0], undefined, 'the refused worker frees its rank');
  const c = drive([
    [{ type: 'hello', identity: 'a', msg: hello(1) }, 1],
    [{ type: 'hello', identity: 'b', msg: hello(1) }, 2],
  ]).actions;
  assert.match((c.find((x) => x.type === 'refuse') as { reason: string }).reason, /rank 1 is already taken/);
});

test('diverging checksums stop the run naming the ranks', () => {
  const { actions } = drive([
    ...joinBoth,
    [{ type: 'result', identity: 'a', phase: 'd', step: 0, check: OK }, 5],
    [{ type: 'result', identity: 'b', phase: 'd', step: 0, check: OK }, 5],
    [{ type: 'result', identity: 'a', phase: 'g', step: 0, check: OK }, 5],
    [{ type: 'result', identity: 'b', phase: 'g', step: 0, check: OK }, 5],
    [{ type: 'result', identity: 'a', phase: 'd', step: 1, check: OK, checksum: 'aaaa' }, 6],
    [{ type: 'result', identity: 'b', phase: 'd', step: 1, check: OK, checksum: 'bbbb' }, 6],
  ]);
  const f = actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.equal(f.error.code, 'DISTGAN_E_REPLICA_DIVERGED');
  assert.match(f.error.message, /ranks 0: aaaa; ranks 1: bbbb/);
});

test('a worker exit or a signal fails the run', () => {
  const ex = drive([...joinBoth, [{ type: 'worker-exited', rank: 1, description: '(pid 7) exited on signal SIGKILL' }, 9]]).actions;
  const f = ex.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.match(f.error.message, /rank 1 \(pid 7\) exited on signal SIGKILL/);
  const sig = drive([...joinBoth, [{ type: 'interrupt', signal: 'SIGTERM' }, 9]]);
  assert.equal(sig.state.phase, 'interrupted');
  assert.equal((sig.actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>).error.code, 'DISTGAN_E_INTERRUPTED');
});

test('while joining, members are re-sent Welcome every JOIN_PROBE_MS (fake clock), so a vanished one can be noticed', () => {
  let s = initialState(OPTS, 0);
  s = step(s, { type: 'hello', identity: 'a', msg: hello(0) }, 10).state;
  assert.equal(step(s, { type: 'tick' }, JOIN_PROBE_MS - 1).actions.length, 0);
  const t = step(s, { type: 'tick' }, JOIN_PROBE_MS);
  assert.deepEqual(t.actions, [{ type: 'welcome', identity: 'a', rank: 0 }]);
  assert.equal(step(t.state, { type: 'tick' }, JOIN_PROBE_MS + 10).actions.length, 0, 'not again until the interval has passed');
  const gone = step(t.state, { type: 'unreachable', identity: 'a', reason: 'Host unreachable' }, JOIN_PROBE_MS + 20).state;
  assert.equal(gone.members[0], undefined);
  const taken = step(gone, { type: 'hello', identity: 'a2', msg: hello(0) }, JOIN_PROBE_MS + 30);
  assert.deepEqual(types(taken.actions), ['welcome']);
  assert.equal(taken.state.members[0]?.identity, 'a2', 'a replacement takes the freed rank');
});

test('a Hello with a rank that is not an integer ≥ -1 is refused and takes no seat', () => {
  for (const rank of [0.5, -2, 1e300]) {
    const t = step(initialState(OPTS, 0), { type: 'hello', identity: 'x', msg: hello(rank) }, 1);
    assert.deepEqual(types(t.actions), ['refuse'], `rank ${rank}`);
    assert.ok(t.state.members.every((m) => m === undefined));
    assert.equal(Object.keys(t.state.members).length, OPTS.worldSize, 'no stray member key');
  }
});

test('cadence: samples and checkpoints every N completed steps, the final ones at the end, none in between at the target', () => {
  const opts: MachineOptions = { ...OPTS, targetSteps: 6, sampleEvery: 2, checkpointEvery: 3 };
  const r = (id: string, phase: 'd' | 'g', s: number): [Event, number] => [{ type: 'result', identity: id, phase, step: s, check: OK }, 10];
  const events: Array<[Event, number]> = [...joinBoth];
  for (let s = 0; s < 6; s++) events.push(r('a', 'd', s), r('b', 'd', s), r('a', 'g', s), r('b', 'g', s));
  events.push([{ type: 'finished', identity: 'a', step: 6, checksum: 'y' }, 20], [{ type: 'finished', identity: 'b', step: 6, checksum: 'y' }, 21]);
  const { actions } = drive(events, opts);
  const cadence = actions.filter((a) => a.type === 'sample' || a.type === 'checkpoint').map((a) => `${a.type}@${(a as { step: number }).step}${a.type === 'checkpoint' ? `:${a.reason}` : ''}`);
  assert.deepEqual(cadence, ['sample@2', 'checkpoint@3:periodic', 'sample@4', 'sample@6', 'checkpoint@6:final']);
});

test('a failure checkpoints the completed steps first (not when replicas diverged, not before any step)', () => {
  const r = (id: string, phase: 'd' | 'g', s: number): [Event, number] => [{ type: 'result', identity: id, phase, step: s, check: OK }, 10];
  const lost = drive([...joinBoth, r('a', 'd', 0), r('b', 'd', 0), r('a', 'g', 0), r('b', 'g', 0), [{ type: 'worker-exited', rank: 1, description: 'exited on signal SIGKILL' }, 30]], { ...OPTS, targetSteps: 5 });
  assert.deepEqual(types(lost.actions).slice(-2), ['checkpoint', 'fail']);
  const ck = lost.actions.find((a) => a.type === 'checkpoint') as Extract<Action, { type: 'checkpoint' }>;
  assert.deepEqual([ck.step, ck.reason], [1, 'failure']);
  const early = drive([...joinBoth, [{ type: 'worker-exited', rank: 1, description: 'x' }, 30]], { ...OPTS, targetSteps: 5 });
  assert.deepEqual(types(early.actions).slice(-1), ['fail'], 'nothing completed, nothing to checkpoint');
  const crash = drive([...joinBoth, r('a', 'd', 0), r('b', 'd', 0), r('a', 'g', 0), r('b', 'g', 0), [{ type: 'crash', error: new ReplicaDivergedError('x') }, 30]], { ...OPTS, targetSteps: 5 });
  assert.deepEqual(types(crash.actions).slice(-1), ['fail'], 'a divergence keeps no checkpoint');
  assert.equal(crash.state.phase, 'failed');
  const internal = drive([...joinBoth, r('a', 'd', 0), r('b', 'd', 0), r('a', 'g', 0), r('b', 'g', 0), [{ type: 'crash', error: new DistganError('DISTGAN_E_INTERNAL', 'boom') }, 30]], { ...OPTS, targetSteps: 5 });
  assert.deepEqual(types(internal.actions).slice(-2), ['checkpoint', 'fail'], 'a crash takes the same path as any failure');
});

test('accepted payloads are handed back with the reduce actions; late and foreign ones are not', () => {
  const r = (id: string, phase: 'd' | 'g', s: number, payload: string): [Event, number] => [{ type: 'result', identity: id, phase, step: s, check: OK, payload }, 10];
  const { actions } = drive([...joinBoth, r('b', 'd', 0, 'bd'), r('zz', 'd', 0, 'stranger'), r('a', 'd', 0, 'ad'), r('a', 'd', 0, 'dup'), r('b', 'g', 0, 'bg'), r('a', 'g', 0, 'ag')], { ...OPTS, targetSteps: 5 });
  const reduces = actions.filter((a) => a.type === 'reduce') as Array<Extract<Action, { type: 'reduce' }>>;
  assert.deepEqual(reduces.map((a) => [a.phase.name, a.parts]), [['d', ['ad', 'bd']], ['g', ['ag', 'bg']]], 'in rank order, whatever the arrival order');
  const done = actions.find((a) => a.type === 'step-done') as Extract<Action, { type: 'step-done' }>;
  assert.deepEqual(done.parts, { d: ['ad', 'bd'], g: ['ag', 'bg'] });
});

test('a third phase from the table: due every 2 steps, between D and G, reduced on its own; the machine needs no edit', () => {
  const phases = [...phaseTable().slice(0, 1), { name: 'toy', network: 'd' as const, every: 2, data: false }, ...phaseTable().slice(1)];
  const opts: MachineOptions = { ...OPTS, targetSteps: 2, phases };
  const r = (id: string, phase: string, s: number): [Event, number] => [{ type: 'result', identity: id, phase, step: s, check: OK, payload: `${id}${phase}${s}` }, 10];
  const { state, actions } = drive([
    ...joinBoth,
    r('a', 'd', 0), r('b', 'd', 0), r('a', 'toy', 0), r('b', 'toy', 0), r('a', 'g', 0), r('b', 'g', 0),
    r('a', 'd', 1), r('b', 'd', 1), r('a', 'toy', 1), r('a', 'g', 1), r('b', 'g', 1),
  ], opts);
  const started = (actions.filter((a) => a.type === 'start-phase') as Array<Extract<Action, { type: 'start-phase' }>>).map((a) => `${a.step}:${a.phase.name}`);
  assert.deepEqual(started, ['0:d', '0:toy', '0:g', '1:d', '1:g'], 'toy runs on step 0 only (every 2), between D and G');
  const carried = (actions.filter((a) => a.type === 'start-phase') as Array<Extract<Action, { type: 'start-phase' }>>).map((a) => a.carry);
  assert.deepEqual(carried, [true, false, true, true, true], "D's update waits through the toy phase (same network), then goes out with G");
  const accumulated = (actions.filter((a) => a.type === 'reduce') as Array<Extract<Action, { type: 'reduce' }>>).map((a) => `${a.phase.name}:${a.accumulate}`);
  assert.deepEqual(accumulated, ['d:false', 'toy:true', 'g:false', 'd:false', 'g:false'], "the toy phase's average sums into D's update");
  const done = actions.filter((a) => a.type === 'step-done') as Array<Extract<Action, { type: 'step-done' }>>;
  assert.deepEqual(Object.keys(done[0]!.parts), ['d', 'toy', 'g']);
  assert.deepEqual(Object.keys(done[1]!.parts), ['d', 'g'], "a toy result at step 1 is not expected and does not count");
  assert.equal(state.phase, 'finishing');
  // The process-wide table takes entries the same way (the coordinator's default).
  const remove = registerPhase({ name: 'toy', network: 'd', every: 2, data: false }, { after: 'd' });
  try {
    assert.deepEqual(phaseTable().map((p) => p.name), ['d', 'toy', 'g']);
  } finally {
    remove();
  }
  assert.deepEqual(phaseTable().map((p) => p.name), ['d', 'g']);
});
