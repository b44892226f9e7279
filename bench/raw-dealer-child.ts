/**
 * The worker side of the raw ZeroMQ transfer measurement: connects a DEALER
 * and answers every message [header, payload] with a payload of the size the
 * header asks for, doing no work, until told to stop.
 *   node dist/bench/raw-dealer-child.js <endpoint>
 */
import { Dealer } from 'zeromq';

const endpoint = process.argv[2]!;
const dealer = new Dealer();
dealer.receiveTimeout = 60_000;
dealer.connect(endpoint);
await dealer.send([Buffer.from('hello')]);
const buffers = new Map<number, Buffer>();
for (;;) {
  const [head] = await dealer.receive();
  const reply = Number(head!.toString());
  if (reply < 0) break;
  let b = buffers.get(reply);
  if (!b) buffers.set(reply, (b = Buffer.alloc(reply, 1)));
  await dealer.send([Buffer.from('r'), b]);
}
dealer.close();
process.exit(0);
