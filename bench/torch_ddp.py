#!/usr/bin/env python3
"""distgan's DCGAN step under PyTorch DistributedDataParallel (gloo, CPU), timed like distgan's workers.

The peer of `distgan bench --suite scaling`'s "distgan, N workers": N processes on this machine
(torch.multiprocessing.spawn, gloo over 127.0.0.1), each with its own batch of --batch samples
(global batch N x batch, as distgan's --batch-size N x B), each with --threads CPU threads
(default 1: a distgan wasm worker computes on one core). G and D are bench/torch_dcgan.py's
reference models wrapped in DistributedDataParallel(broadcast_buffers=False): gradients are
averaged by DDP's all-reduce, and each process keeps its own BN statistics, as distgan's workers
compute BN over their own slice. The step is torch_dcgan.gan_step; in the G phase D runs under
d.no_sync(), so only G's gradients are all-reduced (distgan's G phase sends only G's).

Warm-up steps are not timed; the timed loop starts and ends at a barrier, and rank 0 prints:
  {"framework": "pytorch-ddp", "backend": "gloo", "processes": N, "perProcessBatch": B,
   "threadsPerProcess": T, "imagesPerSecond": ..., "secondsPerStep": ..., ...}
A failure is one JSON line with "error" (exit 3 when PyTorch is missing, 1 otherwise).
Usage: python3 bench/torch_ddp.py [--procs 2] [--batch 64] [--steps 10] [--warmup 2] [--threads 1]
"""
import argparse
import datetime
import json
import os
import socket
import sys
import time


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, world, port, batch, steps, warmup, threads):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from torch_dcgan import adam, build, gan_step

    torch.set_num_threads(threads)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120))
    try:
        torch.manual_seed(1 + rank)  # DDP copies rank 0's parameters to every rank at construction
        g, d = build(torch, nn)
        g = DDP(g.train(), broadcast_buffers=False)
        d = DDP(d.train(), broadcast_buffers=False)
        opt_g = adam(torch, g)
        opt_d = adam(torch, d)
        real = torch.rand(batch, 1, 28, 28) * 2 - 1
        for _ in range(warmup):
            gan_step(torch, F, g, d, opt_g, opt_d, real, 100, d.no_sync)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss_d, loss_g = gan_step(torch, F, g, d, opt_g, opt_d, real, 100, d.no_sync)
        dist.barrier()
        secs = time.perf_counter() - t0
        if rank == 0:
            print(json.dumps({
                "framework": "pytorch-ddp",
                "torch": torch.__version__,
                "backend": "gloo",
                "device": "cpu",
                "processes": world,
                "perProcessBatch": batch,
                "threadsPerProcess": torch.get_num_threads(),
                "steps": steps,
                "warmupSteps": warmup,
                "imagesPerSecond": world * batch * steps / secs,
                "secondsPerStep": secs / steps,
                "lossD": float(loss_d),
                "lossG": float(loss_g),
            }), flush=True)
    finally:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=2, help="DDP processes (default 2)")
    ap.add_argument("--batch", type=int, default=64, help="samples per process per step (default 64)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in each process (default 1)")
    a = ap.parse_args()
    try:
        import torch.multiprocessing as mp
    except ImportError as e:
        print(json.dumps({"framework": "pytorch-ddp", "error": f"PyTorch is not installed (Debian: python3-torch): {e}"}))
        return 3
    if a.procs < 1 or a.batch < 1 or a.steps < 1 or a.warmup < 0 or a.threads < 1:
        print(json.dumps({"framework": "pytorch-ddp", "error": f"bad arguments: {vars(a)}"}))
        return 2
    # The spawned processes import torch_dcgan from this folder.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")] if p)
    try:
        mp.spawn(worker, args=(a.procs, free_port(), a.batch, a.steps, a.warmup, a.threads), nprocs=a.procs, join=True)
    except Exception as e:  # a rank failed: mp.spawn re-raises its error here
        last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        print(json.dumps({"framework": "pytorch-ddp", "error": f"a DDP process failed: {last}"}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
