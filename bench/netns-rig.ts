/**
 * Simulated hosts for benchmarks: Linux network namespaces joined by veth
 * pairs to a bridge (the rig of test/process/netns.test.ts), each host's link
 * rate-limited with `tc` in both directions.
 *
 *   switch namespace: bridge br0, one port p<i> per host
 *   host namespace i: eth0 (its end of the veth pair), 10.<a>.<b>.<i+2>/24, lo up
 *
 * A host's link is limited on egress at both ends of its veth pair (eth0 in
 * the host: host → bridge; p<i> in the switch: bridge → host) by a token
 * bucket (`tc qdisc … root tbf rate R burst … latency …`), so each host has R
 * out and R in, like a full-duplex NIC. Traffic between processes of one host
 * goes over its loopback and is not limited.
 *
 * Nothing is created in the machine's own namespace: the veth pairs are
 * created directly inside their two namespaces, and deleting a namespace
 * deletes its links and qdiscs. Names are `dgbh-<pid>-<random>-<role>`;
 * close() (also run on SIGINT/SIGTERM and at exit) kills every process this
 * rig started, then anything else still inside its namespaces, and deletes
 * them. sweepStale() removes the namespaces of an earlier rig whose process
 * no longer exists (a SIGKILLed bench), and nothing else.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';

const NAME = /^dgbh-(\d+)-([0-9a-f]+)-([a-z0-9]+)$/;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function errText(e: unknown): string {
  const x = e as { stderr?: string | Buffer; message?: string };
  const s = x.stderr ? String(x.stderr).trim() : '';
  return s || (x.message ?? String(e));
}

/** Why the rig cannot run here, or undefined when it can (root, Linux, `ip` and `tc`, namespaces and tbf work). */
export function rigUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux-only';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'creating network namespaces and tc qdiscs needs root';
  for (const tool of ['ip', 'tc']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return `iproute2 (\`${tool}\`) is not installed (Debian: apt-get install -y iproute2)`;
    }
  }
  // Try the real thing once: two namespaces, a veth pair, a tbf qdisc.
  const probe = `dgbh-${process.pid}-${randomBytes(2).toString('hex')}`;
  try {
    run('ip', ['netns', 'add', `${probe}-pa`]);
    run('ip', ['netns', 'add', `${probe}-pb`]);
    run('ip', ['link', 'add', 'eth0', 'netns', `${probe}-pa`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${probe}-pb`]);
    run('ip', ['netns', 'exec', `${probe}-pa`, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '100mbit', 'burst', '64kb', 'latency', '50ms']);
    return undefined;
  } catch (e) {
    return `network namespaces with tc rate limits cannot be set up here: ${errText(e)}`;
  } finally {
    for (const n of ['pa', 'pb']) {
      try {
        run('ip', ['netns', 'del', `${probe}-${n}`]);
      } catch {
        // not created
      }
    }
  }
}

/** Kills what runs in, then deletes, every rig namespace whose creating process is gone. Returns the names removed. */
export function sweepStale(): string[] {
  let list = '';
  try {
    list = run('ip', ['netns', 'list']);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const line of list.split('\n')) {
    const name = line.split(/\s+/)[0] ?? '';
    const m = NAME.exec(name);
    if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    killInside(name);
    try {
      run('ip', ['netns', 'del', name]);
      removed.push(name);
    } catch {
      // raced with another sweeper
    }
  }
  return removed;
}

function killInside(ns: string): void {
  let pids: string[] = [];
  try {
    pids = run('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export interface LinkShape {
  /** Rate of each host's link, each way, Mbit/s. */
  rateMbit: number;
  /** Token bucket depth, bytes (default 256 KiB). */
  burstBytes?: number;
  /**
   * Longest queueing delay before tbf drops, ms, on the host's own egress
   * (default 1000). A real NIC does not drop the host's own packets: it
   * holds them back in the qdisc, and TCP's small-queue limit keeps that
   * short; a token bucket in its place drops what overflows its queue, and
   * TCP takes a local drop of its last packets as a loss (a retransmission
   * timeout, 200 ms). So the host side gets a deep queue.
   */
  hostQueueMs?: number;
  /** The same on the bridge's port towards the host, the switch's buffer, where several senders meet (default 50). */
  portQueueMs?: number;
}

export interface RigOptions {
  /** Attributes of the hosts' route to each other (`ip route` words: `rto_min 5ms`, `congctl cubic`, …; default none). */
  route?: string[];
  /** sysctl settings made in every host namespace (per-namespace ones: net.ipv4.tcp_congestion_control, …). */
  sysctls?: Record<string, string>;
}

export interface RigHost {
  /** Namespace name. */
  ns: string;
  /** IPv4 address of its eth0. */
  address: string;
  /** Name of its port on the bridge (in the switch namespace). */
  port: string;
}

export class NetnsRig {
  readonly tag: string;
  readonly switchNs: string;
  readonly hosts: RigHost[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly created: string[] = [];
  private closed = false;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    this.closeSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  private readonly onExit = (): void => this.closeSync();
  shape: LinkShape | undefined;
  private options: RigOptions = {};

  private constructor(readonly hostCount: number) {
    this.tag = `dgbh-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.switchNs = `${this.tag}-s`;
  }

  /**
   * Creates `hostCount` hosts on one bridge, every link limited to `shape`.
   * Host i is named `<tag>-h<i>`. On failure everything created is removed.
   */
  static create(hostCount: number, shape: LinkShape, options: RigOptions = {}): NetnsRig {
    const rig = new NetnsRig(hostCount);
    rig.options = options;
    process.once('SIGINT', rig.onSignal);
    process.once('SIGTERM', rig.onSignal);
    process.once('exit', rig.onExit);
    try {
      rig.build();
      rig.setShape(shape);
    } catch (e) {
      rig.closeSync();
      throw new Error(`netns rig: ${errText(e)}`);
    }
    return rig;
  }

  private addNs(name: string): void {
    run('ip', ['netns', 'add', name]);
    this.created.push(name);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private build(): void {
    // A /24 per rig; the namespaces are isolated, so it cannot clash with the machine's own.
    const b = 1 + (randomBytes(1)[0]! % 250);
    this.addNs(this.switchNs);
    run('ip', ['-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', this.switchNs, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < this.hostCount; i++) {
      const ns = `${this.tag}-h${i}`;
      const port = `p${i}`;
      const address = `10.215.${b}.${i + 2}`;
      this.addNs(ns);
      run('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', this.switchNs]);
      run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      for (const [k, v] of Object.entries(this.options.sysctls ?? {})) run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${k}=${v}`]);
      if (this.options.route?.length) run('ip', ['-n', ns, 'route', 'replace', `10.215.${b}.0/24`, 'dev', 'eth0', 'proto', 'kernel', 'scope', 'link', 'src', address, ...this.options.route]);
      run('ip', ['-n', this.switchNs, 'link', 'set', port, 'master', 'br0']);
      run('ip', ['-n', this.switchNs, 'link', 'set', port, 'up']);
      this.hosts.push({ ns, address, port });
    }
  }

  /** Sets (or changes) the token bucket on both ends of every host's link. */
  setShape(shape: LinkShape): void {
    const burst = String(shape.burstBytes ?? 256 * 1024);
    const verb = this.shape ? 'replace' : 'add';
    const tbf = (ms: number): string[] => ['root', 'tbf', 'rate', `${shape.rateMbit}mbit`, 'burst', burst, 'latency', `${ms}ms`];
    for (const h of this.hosts) {
      run('ip', ['netns', 'exec', h.ns, 'tc', 'qdisc', verb, 'dev', 'eth0', ...tbf(shape.hostQueueMs ?? 1000)]);
      run('ip', ['netns', 'exec', this.switchNs, 'tc', 'qdisc', verb, 'dev', h.port, ...tbf(shape.portQueueMs ?? 50)]);
    }
    this.shape = { ...shape };
  }

  /** The qdiscs as tc shows them, with their counters (sent, dropped, overlimits), per host and direction. */
  qdiscStats(): Array<{ host: number; egress: string; ingress: string }> {
    return this.hosts.map((h, i) => ({
      host: i,
      egress: run('ip', ['netns', 'exec', h.ns, 'tc', '-s', 'qdisc', 'show', 'dev', 'eth0']).trim().replace(/\s+/g, ' '),
      ingress: run('ip', ['netns', 'exec', this.switchNs, 'tc', '-s', 'qdisc', 'show', 'dev', h.port]).trim().replace(/\s+/g, ' '),
    }));
  }

  /** Packets dropped so far by the hosts' own qdiscs and by the bridge's ports (tbf drops what would wait longer than its `latency`). */
  drops(): { host: number; port: number } {
    const n = (text: string): number => Number(/dropped (\d+)/.exec(text)?.[1] ?? 0);
    let host = 0;
    let port = 0;
    for (const q of this.qdiscStats()) {
      host += n(q.egress);
      port += n(q.ingress);
    }
    return { host, port };
  }

  /** Starts `command args…` inside host i's namespace (`ip netns exec`, which execs it: the child's pid is the program's). */
  spawn(host: number, command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    if (this.closed) throw new Error('netns rig: already closed');
    const h = this.hosts[host];
    if (!h) throw new Error(`netns rig: no host ${host}`);
    const child = spawn('ip', ['netns', 'exec', h.ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}), env: opts.env ?? process.env });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Kills every process this rig started (SIGKILL), and anything else left inside its namespaces. */
  killAll(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const h of this.hosts) killInside(h.ns);
  }

  private closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    this.killAll();
    for (const name of [...this.created].reverse()) {
      try {
        run('ip', ['netns', 'del', name]);
      } catch {
        // already gone
      }
    }
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    process.removeListener('exit', this.onExit);
  }

  /** Kills the rig's processes, waits for them to exit, deletes its namespaces (links and qdiscs go with them). */
  async close(): Promise<void> {
    if (this.closed) return;
    const waits = [...this.children].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()))));
    this.killAll();
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 5000).unref())]);
    this.closeSync();
  }
}
