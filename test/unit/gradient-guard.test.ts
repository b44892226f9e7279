/**
 * The gradient guard: inspection of one contribution, the pure judgement
 * against the history, the machine's policies (fail names the rank,
 * skip-step discards the phase on every replica), Adam's refusal of a
 * second moment that would overflow float32, and the peer rate limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HISTORY_WARMUP, HISTORY_WINDOW, inspectContribution, judge, median, remember } from '../../src/coordinator/gradient-guard.js';
import { PeerLimiter, printable } from '../../src/coordinator/peer-limiter.js';
import { initialState, step, type Action, type Event, type MachineOptions, type MachineState } from '../../src/coordinator/machine.js';
import { MsgType, PROTOCOL_VERSION, type HelloMsg, type ReadyMsg } from '../../src/shared/protocol.js';
import { Adam, FLOAT32_MAX } from '../../src/shared/gan/adam.js';
import { phaseTable } from '../../src/shared/gan/phases.js';
import { fixed } from '../../src/coordinator/membership/fixed.js';
import { NumericError } from '../../src/shared/errors.js';

const EXPECT = { gradLength: 4, auxLength: 2 };

test('inspectContribution: length, NaN/Inf in gradient or BN statistics, norm scaled by the batch share', () => {
  const ok = inspectContribution(Float32Array.from([3, 0, 0, 4]), new Float32Array(0), EXPECT, 0.5);
  assert.equal(ok.problem, undefined);
  assert.equal(ok.norm, 10, '‖(3,0,0,4)‖ = 5, over a share of ½');
  assert.match(inspectContribution(new Float32Array(3), new Float32Array(0), EXPECT, 1).problem!, /holds 3 floats, expected 4/);
  assert.match(inspectContribution(new Float32Array(4), new Float32Array(5), EXPECT, 1).problem!, /BN statistics hold 5 floats, expected 2/);
  assert.match(inspectContribution(Float32Array.from([0, NaN, 0, 0]), new Float32Array(0), EXPECT, 1).problem!, /element 1 of 4 is NaN/);
  assert.match(inspectContribution(Float32Array.from([0, 0, -Infinity, 0]), new Float32Array(0), EXPECT, 1).problem!, /element 2 of 4 is -Infinity/);
  assert.match(inspectContribution(new Float32Array(4), Float32Array.from([1, Infinity]), EXPECT, 1).problem!, /BN statistic 1 of 2 is Infinity/);
  // 1e30 in float32 squares to 1e60: finite in float64, so the norm is exact and huge.
  const huge = inspectContribution(Float32Array.from([1e30, 0, 0, 0]), new Float32Array(0), EXPECT, 1);
  assert.ok(huge.norm > 9.9e29 && Number.isFinite(huge.norm));
});

test('judge: absolute limit from the first step, history factor after the warm-up, switches at 0', () => {
  const opts = { normFactor: 1000, normMax: 1e6 };
  assert.equal(judge({ norm: 5 }, [], opts), undefined);
  assert.match(judge({ norm: 2e6 }, [], opts)!, /exceeds --grad-norm-max/);
  assert.equal(judge({ norm: 2e6 }, [], { normFactor: 1000, normMax: 0 }), undefined, 'normMax 0 is off');
  const history = Array.from({ length: HISTORY_WARMUP }, () => 2);
  assert.equal(judge({ norm: 1999 }, history, opts), undefined);
  assert.match(judge({ norm: 2001 }, history, opts)!, /1001× the median 2\.000 of the last 8 accepted \(--grad-norm-factor 1000\)/);
  assert.equal(judge({ norm: 2001 }, history.slice(1), opts), undefined, 'no history check before the warm-up');
  assert.equal(judge({ norm: 2001 }, history, { normFactor: 0, normMax: 1e6 }), undefined, 'factor 0 is off');
  assert.equal(judge({ norm: 5 }, Array.from({ length: 10 }, () => 0), opts), undefined, 'a zero median never refuses');
  assert.match(judge({ norm: NaN, problem: 'bad' }, history, opts)!, /^bad$/);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  const long = remember(Array.from({ length: HISTORY_WINDOW }, (_, i) => i), [100, 101]);
  assert.equal(long.length, HISTORY_WINDOW);
  assert.deepEqual(long.slice(-2), [100, 101]);
});

// ---- the machine's policies -------------------------------------------------

const hello = (rank: number): HelloMsg => ({ t: MsgType.Hello, protocol: PROTOCOL_VERSION, version: '0.1.0', host: `h${rank}`, pid: 100 + rank, backend: 'wasm', backendReason: '', rank });
const ready = (rank: number): ReadyMsg => ({ t: MsgType.Ready, rank, modelFingerprint: 'm', datasetFingerprint: 'd', datasetCount: 10 });

function machine(onBadGradient: 'fail' | 'skip-step'): { state: MachineState; feed: (ev: Event) => Action[] } {
  const opts: MachineOptions = {
    worldSize: 3, startStep: 0, targetSteps: 100, checksumEvery: 1000, joinTimeoutMs: 1e6, stepTimeoutMs: 1e6,
    modelFingerprint: 'm', datasetFingerprint: 'd', version: '0.1.0', guard: { normFactor: 1000, normMax: 1e6 }, onBadGradient, sampleEvery: 0, checkpointEvery: 0, phases: phaseTable(), membership: fixed,
  };
  const box = { state: initialState(opts, 0), feed: (ev: Event): Action[] => [] };
  box.feed = (ev) => {
    const t = step(box.state, ev, 1);
    box.state = t.state;
    return t.actions;
  };
  for (const r of [0, 1, 2]) box.feed({ type: 'hello', identity: `w${r}`, msg: hello(r) });
  for (const r of [0, 1, 2]) box.feed({ type: 'ready', identity: `w${r}`, msg: ready(r) });
  return box;
}

const result = (rank: number, phase: 'd' | 'g', s: number, norm = 1, problem?: string): Event => ({ type: 'result', identity: `w${rank}`, phase, step: s, check: { norm, ...(problem ? { problem } : {}) } });
const kinds = (a: Action[]): string[] => a.filter((x) => x.type !== 'log').map((x) => x.type);

test('fail policy: a NaN contribution fails the run naming that rank, whichever rank reports first', () => {
  for (const bad of [0, 1, 2]) {
    for (const phase of ['d', 'g'] as const) {
      const m = machine('fail');
      if (phase === 'g') for (const r of [0, 1, 2]) m.feed(result(r, 'd', 0));
      let actions: Action[] = [];
      for (const r of [2, 0, 1]) actions = m.feed(result(r, phase, 0, r === bad ? NaN : 1, r === bad ? 'gradient element 7 of 10 is NaN' : undefined));
      const f = actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
      assert.ok(f, `phase ${phase}, bad rank ${bad}: the run fails`);
      assert.equal(f.error.code, 'DISTGAN_E_NUMERIC');
      assert.match(f.error.message, new RegExp(`${phase.toUpperCase()} gradient of step 0 from rank ${bad} \\(h${bad} pid ${100 + bad}\\): gradient element 7 of 10 is NaN`));
      for (const other of [0, 1, 2].filter((r) => r !== bad)) assert.doesNotMatch(f.error.message, new RegExp(`rank ${other}\\b`), 'honest ranks are not named');
      assert.equal(kinds(actions).includes('reduce'), false, 'nothing of the bad phase is averaged');
    }
  }
});

test('skip-step: a bad D phase skips the whole step; a bad G phase skips G only; training goes on', () => {
  const m = machine('skip-step');
  for (const r of [0, 1, 2]) m.feed(result(r, 'd', 0));
  for (const r of [0, 1, 2]) m.feed(result(r, 'g', 0));
  let a: Action[] = [];
  for (const r of [0, 1, 2]) a = m.feed(result(r, 'd', 1, r === 1 ? 5e6 : 1));
  assert.deepEqual(kinds(a), ['skip', 'start-phase']);
  const skipD = a.find((x) => x.type === 'skip') as Extract<Action, { type: 'skip' }>;
  assert.deepEqual([skipD.step, skipD.phase.name, skipD.ranks], [1, 'd', [1]]);
  assert.match((a.find((x) => x.type === 'log') as { text: string }).text, /rank 1 \(h1 pid 101\).*the rest of step 1 is skipped on every replica/);
  assert.equal(m.state.step, 2);
  assert.equal(m.state.stepPhase, 'd');
  for (const r of [0, 1, 2]) m.feed(result(r, 'd', 2));
  for (const r of [0, 1, 2]) a = m.feed(result(r, 'g', 2, r === 2 ? NaN : 1, r === 2 ? 'gradient element 0 of 4 is Infinity' : undefined));
  assert.deepEqual(kinds(a), ['skip', 'start-phase']);
  const skipG = a.find((x) => x.type === 'skip') as Extract<Action, { type: 'skip' }>;
  assert.deepEqual([skipG.step, skipG.phase.name, skipG.ranks], [2, 'g', [2]]);
  assert.equal(m.state.step, 3);
  assert.equal(m.state.phase, 'training');
});

test('the history check uses only accepted phases, per phase', () => {
  const m = machine('skip-step');
  for (let s = 0; s < HISTORY_WARMUP; s++) {
    for (const r of [0, 1, 2]) m.feed(result(r, 'd', s, 2));
    for (const r of [0, 1, 2]) m.feed(result(r, 'g', s, 50));
  }
  assert.equal(m.state.normHistory.d.length, 3 * HISTORY_WARMUP);
  assert.equal(median(m.state.normHistory.g), 50);
  let a: Action[] = [];
  for (const r of [0, 1, 2]) a = m.feed(result(r, 'd', HISTORY_WARMUP, r === 0 ? 2500 : 2));
  assert.ok(kinds(a).includes('skip'), '2500 > 1000 × median 2 is refused in D');
  const before = m.state.normHistory.d.length;
  for (const r of [0, 1, 2]) m.feed(result(r, 'd', HISTORY_WARMUP + 1, 2));
  for (const r of [0, 1, 2]) a = m.feed(result(r, 'g', HISTORY_WARMUP + 1, 2500));
  assert.ok(kinds(a).includes('step-done'), '2500 < 1000 × median 50 is accepted in G');
  assert.equal(m.state.normHistory.d.length, before + 3, 'the refused D phase added nothing');
});

test('an unreachable member frees its rank while joining and fails the run, naming it, while training', () => {
  const opts: MachineOptions = {
    worldSize: 2, startStep: 0, targetSteps: 10, checksumEvery: 1000, joinTimeoutMs: 1e6, stepTimeoutMs: 1e6,
    modelFingerprint: 'm', datasetFingerprint: 'd', version: '0.1.0', guard: { normFactor: 0, normMax: 0 }, onBadGradient: 'fail', sampleEvery: 0, checkpointEvery: 0, phases: phaseTable(), membership: fixed,
  };
  let s = initialState(opts, 0);
  s = step(s, { type: 'hello', identity: 'gone', msg: hello(-1) }, 1).state;
  assert.equal(s.members[0]?.identity, 'gone');
  s = step(s, { type: 'unreachable', identity: 'gone', reason: 'Host unreachable' }, 2).state;
  assert.equal(s.members[0], undefined, 'the rank is free again');
  assert.equal(step(s, { type: 'unreachable', identity: 'stranger', reason: 'x' }, 3).actions.length, 0, 'a stranger changes nothing');
  for (const r of [0, 1]) s = step(s, { type: 'hello', identity: `w${r}`, msg: hello(r) }, 4).state;
  for (const r of [0, 1]) s = step(s, { type: 'ready', identity: `w${r}`, msg: ready(r) }, 5).state;
  assert.equal(s.phase, 'training');
  const t = step(s, { type: 'unreachable', identity: 'w1', reason: 'Host unreachable' }, 6);
  const f = t.actions.find((a) => a.type === 'fail') as Extract<Action, { type: 'fail' }>;
  assert.equal(f.error.code, 'DISTGAN_E_WORKER_FAILED');
  assert.equal(f.lostRank, 1);
  assert.match(f.error.message, /rank 1 \(h1 pid 101\) cannot be reached: Host unreachable/);
});

// ---- Adam keeps its moments finite -----------------------------------------

test('Adam refuses, changing nothing, a gradient whose second moment would overflow float32', () => {
  const adam = new Adam(3, { lr: 2e-4, beta1: 0.5, beta2: 0.999, epsilon: 1e-8 }, 'D');
  const w = Float32Array.from([1, 2, 3]);
  adam.apply(w, Float32Array.from([0.1, -0.2, 0.3]));
  const before = { w: w.slice(), m: adam.m.slice(), v: adam.v.slice(), step: adam.step };
  for (const g of [1e30, -1e21, Number.MAX_VALUE]) {
    const grad = Float32Array.from([0.1, g, 0.3]);
    assert.throws(() => adam.apply(w, grad), (e: unknown) => e instanceof NumericError && /second moment would overflow float32|is Infinity/.test(e.message));
    assert.throws(() => adam.check(grad), NumericError);
  }
  assert.deepEqual([w, adam.m, adam.v, adam.step], [before.w, before.m, before.v, before.step], 'weights, moments and step unchanged');
  // Just below the limit stays finite: √(FLOAT32_MAX / (1 − β2)) ≈ 5.8e20.
  adam.apply(w, Float32Array.from([0, 5e20, 0]));
  assert.ok([...adam.v, ...adam.m, ...w].every(Number.isFinite));
  assert.ok(adam.v[1]! <= FLOAT32_MAX);
  const s = adam.step;
  adam.skip();
  assert.equal(adam.step, s + 1, 'skip counts a discarded update');
});

// ---- peer rate limits and log escaping --------------------------------------

test('PeerLimiter: a burst per peer, refilled over time, a global cap, bounded memory', () => {
  const lim = new PeerLimiter({ burst: 3, perSecond: 1, globalBurst: 5, globalPerSecond: 100, maxPeers: 2 });
  const allowed = (peer: string, now: number, n: number): number => Array.from({ length: n }, () => lim.allow(peer, now)).filter(Boolean).length;
  assert.equal(allowed('a', 0, 10), 3);
  assert.equal(allowed('a', 1000, 10), 1, 'one more after a second');
  assert.equal(lim.takeSuppressed(), 16);
  assert.equal(lim.takeSuppressed(), 0);
  const g = new PeerLimiter({ burst: 100, perSecond: 0, globalBurst: 4, globalPerSecond: 0 });
  assert.equal(['p', 'q', 'r', 's', 't', 'u'].filter((p) => g.allow(p, 0)).length, 4, 'many identities share the global budget');
  for (let i = 0; i < 10_000; i++) lim.allow(`peer-${i}`, 2000 + i);
  assert.ok((lim as unknown as { peers: Map<string, unknown> }).peers.size <= 2);
});

test('printable escapes control characters and line separators and cuts long strings', () => {
  assert.equal(printable('node-1\n[fake] rank 0 joined\u001b[2J\u0000'), 'node-1\\x0a[fake] rank 0 joined\\x1b[2J\\x00');
  assert.equal(printable('a\u2028b\u0085'), 'a\\u2028b\\x85');
  assert.equal(printable('ok host-01.example'), 'ok host-01.example');
  assert.match(printable('x'.repeat(500), 10), /^x{10}…\(490 more\)$/);
});
