/**
 * A raw TCP transfer between two simulated hosts (bench/netns-rig.ts), to
 * measure what a rate-limited link really carries: the payload rate a TCP
 * stream gets, below the nominal `tc` rate by the Ethernet, IP and TCP
 * headers (tbf counts whole frames).
 *
 *   node dist/bench/netns-rate-child.js sink   HOST PORT       prints "ready", then one JSON line {bytes, seconds, mbit}
 *   node dist/bench/netns-rate-child.js source HOST PORT BYTES sends BYTES and ends
 *
 * The sink times from the first byte received to the end of the stream, so
 * the connection set-up and the sender's start are left out.
 */
import net from 'node:net';

const [mode, host, portText, bytesText] = process.argv.slice(2);
const port = Number(portText);
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

if (mode === 'sink') {
  const server = net.createServer((s) => {
    let bytes = 0;
    let first: number | undefined;
    s.on('data', (d: Buffer) => {
      first ??= now();
      bytes += d.length;
    });
    s.on('end', () => {
      const seconds = first === undefined ? 0 : (now() - first) / 1000;
      process.stdout.write(JSON.stringify({ bytes, seconds, mbit: seconds > 0 ? (bytes * 8) / seconds / 1e6 : null }) + '\n');
      server.close();
      s.destroy();
    });
  });
  server.listen(port, host, () => process.stdout.write('ready\n'));
} else if (mode === 'source') {
  const total = Number(bytesText);
  const s = net.connect(port, host!, () => {
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    let left = total;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  s.on('error', (e) => {
    process.stderr.write(`source: ${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: netns-rate-child.js sink HOST PORT | source HOST PORT BYTES\n');
  process.exit(2);
}
