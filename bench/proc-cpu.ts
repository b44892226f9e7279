/**
 * CPU time of another process, thread by thread, from /proc (Linux), for
 * `distgan bench --suite reduce`: the coordinator's (or the raw-floor
 * router's) on-CPU time is sampled by a simulated worker at phase
 * boundaries, without touching the measured process.
 *
 * Each thread's on-CPU nanoseconds come from /proc/PID/task/TID/schedstat
 * (nanosecond resolution), or utime + stime of .../stat (clock ticks) where
 * schedstat is missing. Threads are grouped as
 *  - main: the process's main thread (TID = PID), the coordinator's event loop;
 *  - zmq: libzmq's I/O and reaper threads (comm "ZMQbg/…"), which move the
 *    bytes between the sockets and memory (one set per ZeroMQ context: the
 *    main thread's and each shard owner thread's);
 *  - other: every other thread: the shard owner threads (sharded reduction)
 *    together with V8's GC/compiler helpers and libuv's pool. Linux shows
 *    Node's worker threads under the same name as V8's helpers ("node"), so
 *    they cannot be told apart from outside.
 * A thread that ended between two samples takes its time with it; the
 * measured processes keep theirs for the whole run.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface ThreadCpu {
  main: number;
  zmq: number;
  other: number;
  total: number;
}

/** Clock ticks per second of /proc/…/stat (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

function threadNs(pid: number, tid: string): number {
  try {
    const s = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
    const ns = Number(s.split(' ')[0]);
    if (Number.isFinite(ns)) return ns;
  } catch {
    // fall through to stat
  }
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1e9) / USER_HZ;
  } catch {
    return 0; // the thread ended
  }
}

/** On-CPU nanoseconds of process `pid` so far, by thread group; undefined if it is gone. */
export function sampleThreadCpu(pid: number): ThreadCpu | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const out: ThreadCpu = { main: 0, zmq: 0, other: 0, total: 0 };
  for (const tid of tids) {
    const ns = threadNs(pid, tid);
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (tid === String(pid)) out.main += ns;
    else if (comm.startsWith('ZMQbg')) out.zmq += ns;
    else out.other += ns;
    out.total += ns;
  }
  return out;
}

/** Peak resident memory (VmHWM) of `pid` in MiB, or undefined. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** b − a, thread group by group. */
export function cpuDelta(a: ThreadCpu, b: ThreadCpu): ThreadCpu {
  return { main: b.main - a.main, zmq: b.zmq - a.zmq, other: b.other - a.other, total: b.total - a.total };
}
