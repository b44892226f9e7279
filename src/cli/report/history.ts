/**
 * A run's history as `distgan report` shows it, built from the lines of its
 * stats.jsonl (coordinator/stats-file.ts).
 *
 * A run folder may hold several invocations ("sessions"): the first launch,
 * then each --resume. A resumed session starts from its checkpoint's step,
 * which can be earlier than the last step logged before it (a kill -9 after
 * step 17 with the newest checkpoint at 15): the steps after the checkpoint
 * were trained again, so their older lines are replaced by the new ones, and
 * the curves show the run the weights actually went through.
 */
import { ConfigError } from '../../shared/errors.js';
import type {
  CheckpointLine, ParsedStats, PeerRejectedLine, RunEndLine, RunStartLine, SampleLine, StatsLine, StepLine, WorkerJoinedLine, WorkerLostLine,
} from '../../coordinator/stats-file.js';

export type RunOutcome = 'finished' | 'failed' | 'incomplete';

export interface WorkerRow {
  rank: number;
  host: string;
  pid: number;
  backend: string;
  /** Why it was lost, null while it stayed. */
  lost: string | null;
  computeSeconds: number;
  dataSeconds: number;
}

export interface Session {
  /** 1 for the first invocation, 2 for the first resume, ... */
  index: number;
  start: RunStartLine;
  end: RunEndLine | null;
  /** Last step this session reached (its start step when it completed none). */
  lastStep: number;
  /** Wall seconds from its start to its last line. */
  wallSeconds: number;
  workers: WorkerRow[];
}

export type EventLine = CheckpointLine | SampleLine | WorkerJoinedLine | WorkerLostLine | PeerRejectedLine;

export interface RunHistory {
  sessions: Session[];
  /** Step lines in step order, one per step, the newest session's where sessions overlap. */
  steps: StepLine[];
  /** Step lines dropped because a later session trained those steps again. */
  replacedSteps: number;
  events: Array<{ session: number; line: EventLine }>;
  outcome: RunOutcome;
  /** The newest session's end line, if it wrote one. */
  end: RunEndLine | null;
  totals: { sentBytes: number; receivedBytes: number; workersLost: number; peersRejected: number; checkpoints: number; wallSeconds: number };
  partialLastLine: boolean;
  unknownEvents: number;
}

/** Builds the history; a log that does not start with a run_start line is a ConfigError naming `source`. */
export function buildHistory(parsed: ParsedStats, source: string): RunHistory {
  const { lines } = parsed;
  if (lines.length === 0) {
    throw new ConfigError(`${source} holds no complete line${parsed.partialLastLine ? ' (only a line cut short)' : ''}: the run stopped before it started, or this is not a distgan run log`);
  }
  if (lines[0]!.event !== 'run_start') {
    throw new ConfigError(`${source} does not begin with a run_start line (it begins with ${lines[0]!.event}): the run log is corrupt`);
  }
  const sessions: Session[] = [];
  const steps: StepLine[] = [];
  const events: RunHistory['events'] = [];
  let replacedSteps = 0;
  let sentBytes = 0;
  let receivedBytes = 0;
  let workersLost = 0;
  let peersRejected = 0;
  let checkpoints = 0;
  let cur: Session | undefined;
  let workers = new Map<number, WorkerRow>();
  let lastLineTime = 0;

  const closeSession = (): void => {
    if (!cur) return;
    cur.workers = [...workers.values()].sort((a, b) => a.rank - b.rank);
    cur.wallSeconds = Math.max(0, lastLineTime - cur.start.startedAt);
  };

  for (const line of lines as StatsLine[]) {
    if (line.event === 'run_start') {
      closeSession();
      // Steps after the resumed checkpoint are trained again: their old lines no longer describe the run.
      while (steps.length > 0 && steps[steps.length - 1]!.step > line.startStep) {
        steps.pop();
        replacedSteps++;
      }
      cur = { index: sessions.length + 1, start: line, end: null, lastStep: line.startStep, wallSeconds: 0, workers: [] };
      sessions.push(cur);
      workers = new Map();
      lastLineTime = line.time;
      continue;
    }
    const s = cur!;
    lastLineTime = Math.max(lastLineTime, line.time);
    switch (line.event) {
      case 'step':
        while (steps.length > 0 && steps[steps.length - 1]!.step >= line.step) {
          steps.pop();
          replacedSteps++;
        }
        steps.push(line);
        s.lastStep = Math.max(s.lastStep, line.step);
        if (Number.isFinite(line.exchangeBytes.sent)) sentBytes += line.exchangeBytes.sent;
        if (Number.isFinite(line.exchangeBytes.received)) receivedBytes += line.exchangeBytes.received;
        for (const r of line.ranks) {
          const w = workers.get(r.rank);
          if (w) {
            w.computeSeconds = r.computeSeconds;
            w.dataSeconds = r.dataSeconds;
          }
        }
        break;
      case 'run_end':
        s.end = line;
        s.lastStep = Math.max(s.lastStep, line.step);
        break;
      case 'worker_joined':
        workers.set(line.rank, { rank: line.rank, host: line.host, pid: line.pid, backend: line.backend, lost: null, computeSeconds: NaN, dataSeconds: NaN });
        events.push({ session: s.index, line });
        break;
      case 'worker_lost': {
        const w = workers.get(line.rank);
        if (w) w.lost = line.reason;
        else workers.set(line.rank, { rank: line.rank, host: '?', pid: 0, backend: '?', lost: line.reason, computeSeconds: NaN, dataSeconds: NaN });
        workersLost++;
        events.push({ session: s.index, line });
        break;
      }
      case 'checkpoint':
        checkpoints++;
        events.push({ session: s.index, line });
        break;
      case 'peer_rejected':
        peersRejected += line.count;
        events.push({ session: s.index, line });
        break;
      case 'sample':
        events.push({ session: s.index, line });
        break;
    }
  }
  closeSession();
  const last = sessions[sessions.length - 1]!;
  const outcome: RunOutcome = last.end === null ? 'incomplete' : last.end.ok ? 'finished' : 'failed';
  return {
    sessions,
    steps,
    replacedSteps,
    events,
    outcome,
    end: last.end,
    totals: { sentBytes, receivedBytes, workersLost, peersRejected, checkpoints, wallSeconds: sessions.reduce((a, s) => a + s.wallSeconds, 0) },
    partialLastLine: parsed.partialLastLine,
    unknownEvents: parsed.unknownEvents,
  };
}
