/**
 * Rate limits for what peers can make the coordinator do: log lines about
 * their bad messages, and replies to their handshakes. Without them a single
 * stranger can fill the log (about 1.6 lines per bad message were measured)
 * or keep the loop busy answering Hellos it never reads.
 *
 * A token bucket per peer (burst, then `perSecond`), and one shared by all
 * peers so that many identities (one per connection) cannot multiply the
 * budget. Peers are remembered in insertion order and the oldest are
 * forgotten past `maxPeers`, so memory stays bounded however many
 * identities a flood uses. Time comes from the caller (injected clock).
 */

export interface LimiterOptions {
  /** Tokens a peer starts with. */
  burst: number;
  /** Tokens a peer regains per second. */
  perSecond: number;
  /** Tokens all peers together start with. */
  globalBurst: number;
  /** Tokens all peers together regain per second. */
  globalPerSecond: number;
  /** Peers remembered at most (default 4096). */
  maxPeers?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

function refill(b: Bucket, now: number, perSecond: number, cap: number): void {
  b.tokens = Math.min(cap, b.tokens + ((now - b.at) / 1000) * perSecond);
  b.at = now;
}

export class PeerLimiter {
  private readonly peers = new Map<string, Bucket>();
  private readonly global: Bucket;
  /** Events refused since the last `takeSuppressed`. */
  private suppressed = 0;

  constructor(private readonly opts: LimiterOptions) {
    this.global = { tokens: opts.globalBurst, at: -Infinity };
  }

  /** Whether `peer` may have one more event now; counts the refusals. */
  allow(peer: string, now: number): boolean {
    let b = this.peers.get(peer);
    if (!b) {
      b = { tokens: this.opts.burst, at: now };
      this.peers.set(peer, b);
      if (this.peers.size > (this.opts.maxPeers ?? 4096)) this.peers.delete(this.peers.keys().next().value!);
    } else {
      refill(b, now, this.opts.perSecond, this.opts.burst);
    }
    if (this.global.at === -Infinity) this.global.at = now;
    refill(this.global, now, this.opts.globalPerSecond, this.opts.globalBurst);
    if (b.tokens < 1 || this.global.tokens < 1) {
      this.suppressed++;
      return false;
    }
    b.tokens -= 1;
    this.global.tokens -= 1;
    return true;
  }

  /** How many events were refused since the last call, and resets the count. */
  takeSuppressed(): number {
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }
}

/**
 * A peer-supplied string made safe for a log line: control characters
 * (newlines, ESC, NUL, C1) and Unicode line separators are shown as \\xNN /
 * \\uNNNN escapes, so a hostile host name cannot forge log lines or clear a
 * terminal; long strings are cut to `max` characters.
 */
export function printable(s: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const escaped = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return escaped.length > max ? `${escaped.slice(0, max)}…(${escaped.length - max} more)` : escaped;
}
