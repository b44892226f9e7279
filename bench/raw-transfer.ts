/**
 * Raw ZeroMQ cost of one distgan step's traffic, with no compute and no
 * protocol: a ROUTER here and N DEALER processes, two round trips per step
 * with distgan's payload sizes (previous G gradient down / D gradient up,
 * then D gradient down / G gradient up). This is the floor that distgan's
 * measured exchange time is compared against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Router } from 'zeromq';
import { PACKAGE_ROOT } from '../src/shared/version.js';

export async function measureRawTransfer(o: { workers: number; gBytes: number; dBytes: number; steps: number; warmup: number }): Promise<number> {
  const router = new Router();
  router.receiveTimeout = 60_000;
  await router.bind('tcp://127.0.0.1:*');
  const endpoint = router.lastEndpoint!;
  const children: ChildProcess[] = [];
  try {
    for (let i = 0; i < o.workers; i++) {
      children.push(spawn(process.execPath, [join(PACKAGE_ROOT, 'dist', 'bench', 'raw-dealer-child.js'), endpoint], { stdio: 'ignore' }));
    }
    const ids: Buffer[] = [];
    while (ids.length < o.workers) {
      const [id] = await router.receive();
      ids.push(id!);
    }
    const gDown = Buffer.alloc(o.gBytes, 2);
    const dDown = Buffer.alloc(o.dBytes, 3);
    const roundTrip = async (down: Buffer, upBytes: number): Promise<void> => {
      for (const id of ids) await router.send([id, Buffer.from(String(upBytes)), down]);
      for (let i = 0; i < ids.length; i++) await router.receive();
    };
    let t0 = 0;
    for (let s = 0; s < o.warmup + o.steps; s++) {
      if (s === o.warmup) t0 = performance.now();
      await roundTrip(gDown, o.dBytes);
      await roundTrip(dDown, o.gBytes);
    }
    const perStep = (performance.now() - t0) / 1000 / o.steps;
    for (const id of ids) await router.send([id, Buffer.from('-1')]);
    return perStep;
  } finally {
    await new Promise((r) => setTimeout(r, 200));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    router.close();
  }
}
