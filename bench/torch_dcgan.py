#!/usr/bin/env python3
"""The DCGAN that distgan's compute bench trains, in PyTorch, timed the same way.

Model (docs/gpu.md, /work/shared/facts.md "DCGAN-MNIST"; width 1):
  G: dense 100 -> 7*7*128 (no bias), BN, leakyReLU(0.2), reshape 7x7x128,
     convT 64 5x5 s2 'same' (no bias), BN, leakyReLU(0.2), convT 1 5x5 s2 'same' (+bias), tanh
     -> 846,273 trainable parameters
  D: conv 64 5x5 s2 'same', leakyReLU(0.2), conv 128 5x5 s2 'same', leakyReLU(0.2), flatten, dense 1
     -> 212,865 trainable parameters
BN: momentum 0.1 in PyTorch's convention (= distgan's Keras-style 0.9), eps 1e-3, as distgan
(src/shared/models/dcgan.ts).

make_generator() builds G for any distgan DCGAN spec (width, latent size, resolution, channels,
BN or not), named as distgan's safetensors checkpoints name G's tensors (docs/checkpoints.md):
dense, bn0, convt1, bn1, convt2, ... With tf_same=True its transposed convolutions pad as
TensorFlow's 'same' does (1 row/column before, 2 after, for 5x5 stride 2), so a checkpoint's G
computes what distgan's G computes; PyTorch's usual padding=2, output_padding=1 (the default,
timed by the bench) costs the same but is shifted by one pixel. See generator_from_spec().

One step = distgan's trainer step:
  D phase: z ~ N(0, I); fake = G(z) (training mode, no grad); one D pass over [real; fake] (D has
           no BN, so this equals two passes); loss_D = 1/2 [mean softplus(-D(x)) + mean softplus(D(fake))];
           backward into D; Adam(D).
  G phase: fresh z; loss_G = mean softplus(-D(G(z))); backward into G; Adam(G).
Adam: lr 2e-4, betas (0.5, 0.999), eps 1e-8 (distgan's defaults).

Real images are a fixed random batch in [-1, 1] already on the device and latents are drawn on the
device: this is how a PyTorch user would feed a GPU, so the figure is PyTorch at its natural best.
Float32 throughout; TF32 is OFF unless --tf32 (distgan's WebGPU path computes in float32).
Warm-up steps (cuDNN autotuning, allocator growth) are not timed; the timed loop ends with a
device synchronize. On the CPU, --threads sets torch.set_num_threads (1, or "all" = every core
this process may run on).

Prints one JSON line per batch size:
  {"framework": "pytorch", "device": ..., "threads": ..., "batchSize": B, "imagesPerSecond": ..., "secondsPerStep": ..., ...}
A failure is one JSON line with "error" (exit 3 when PyTorch or the device is missing).
Usage: python3 bench/torch_dcgan.py [--batch 64 256] [--steps 50] [--warmup 10] [--device cuda|cpu]
                                    [--threads N|all] [--tf32]
"""
import argparse
import json
import math
import os
import sys
import time

# distgan's constants (src/shared/models/dcgan.ts, spec.ts).
LEAKY_ALPHA = 0.2
BN_MOMENTUM = 0.1  # PyTorch's convention: distgan's (Keras-style) 0.9
BN_EPSILON = 1e-3
KERNEL = 5
MAX_BASE_CHANNELS = 512


def dcgan_plan(spec):
    """src/shared/models/spec.ts dcganPlan: (start side, G channels, D channels) of a DCGAN spec."""
    start = 7 if spec["resolution"] == 28 else 4
    ups = round(math.log2(spec["resolution"] / start))
    # JavaScript's Math.round (halves up), not Python's round (halves to even).
    scaled = lambda base: max(1, math.floor(base * spec["width"] + 0.5))
    hidden = [scaled(min(MAX_BASE_CHANNELS, 64 * 2 ** k)) for k in range(ups)]
    return start, hidden[::-1] + [spec["channels"]], hidden


def make_generator(torch, nn, latent_dim=100, start=7, g_channels=(128, 64, 1), batch_norm=True, tf_same=False):
    """distgan's DCGAN generator; the defaults are the reference model (width 1, MNIST)."""
    g_channels = list(g_channels)
    c0 = g_channels[0]
    features = start * start * c0
    stages = len(g_channels) - 1

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(latent_dim, features, bias=not batch_norm)
            if batch_norm:
                self.bn0 = nn.BatchNorm1d(features, momentum=BN_MOMENTUM, eps=BN_EPSILON)
            for i in range(1, stages + 1):
                last = i == stages
                # tf_same: pad 1 and drop the last row/column below = TensorFlow's 'same' (pad 1 before, 2 after).
                pad, out_pad = (1, 0) if tf_same else (2, 1)
                conv = nn.ConvTranspose2d(g_channels[i - 1], g_channels[i], KERNEL, stride=2, padding=pad,
                                          output_padding=out_pad, bias=last or not batch_norm)
                setattr(self, f"convt{i}", conv)
                if batch_norm and not last:
                    setattr(self, f"bn{i}", nn.BatchNorm2d(g_channels[i], momentum=BN_MOMENTUM, eps=BN_EPSILON))
            self.act = nn.LeakyReLU(LEAKY_ALPHA)

        def forward(self, z):
            h = self.dense(z)
            if batch_norm:
                h = self.bn0(h)
            h = self.act(h).view(-1, c0, start, start)
            for i in range(1, stages + 1):
                h = getattr(self, f"convt{i}")(h)
                if tf_same:
                    h = h[:, :, :-1, :-1]
                if i == stages:
                    return torch.tanh(h)
                if batch_norm:
                    h = getattr(self, f"bn{i}")(h)
                h = self.act(h)
            return h

    return Generator()


def generator_from_spec(torch, nn, spec, tf_same=True):
    """The generator of a distgan DCGAN model spec (a checkpoint's __metadata__.model, parsed)."""
    if spec.get("kind") != "dcgan":
        raise ValueError(f"not a DCGAN spec: {spec!r}")
    start, g_channels, _ = dcgan_plan(spec)
    return make_generator(torch, nn, spec["latentDim"], start, g_channels, spec["batchNorm"], tf_same)


def build(torch, nn, latent_dim=100):
    """The reference G and D (width 1, MNIST), padded as PyTorch users usually pad."""

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 64, KERNEL, stride=2, padding=2)
            self.conv2 = nn.Conv2d(64, 128, KERNEL, stride=2, padding=2)
            self.dense = nn.Linear(7 * 7 * 128, 1)
            self.act = nn.LeakyReLU(LEAKY_ALPHA)

        def forward(self, x):
            h = self.act(self.conv1(x))
            h = self.act(self.conv2(h))
            return self.dense(h.flatten(1))

    return make_generator(torch, nn, latent_dim), Discriminator()


def gan_step(torch, F, g, d, opt_g, opt_d, real, latent_dim, d_no_sync=None):
    """One distgan step (D phase, then G phase). d_no_sync: DDP's d.no_sync, so the G phase's D gradients are not reduced."""
    batch = real.shape[0]
    # D phase
    z = torch.randn(batch, latent_dim, device=real.device)
    with torch.no_grad():
        fake = g(z)
    opt_d.zero_grad(set_to_none=True)
    logits = d(torch.cat([real, fake]))
    loss_d = 0.5 * (F.softplus(-logits[:batch]).mean() + F.softplus(logits[batch:]).mean())
    loss_d.backward()
    opt_d.step()
    # G phase
    z = torch.randn(batch, latent_dim, device=real.device)
    opt_g.zero_grad(set_to_none=True)
    if d_no_sync is None:
        loss_g = F.softplus(-d(g(z))).mean()
        loss_g.backward()
    else:
        with d_no_sync():
            loss_g = F.softplus(-d(g(z))).mean()
            loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def adam(torch, module):
    return torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)


def cpu_threads(arg):
    """--threads: a positive integer, or 'all' = the cores this process may run on."""
    if arg == "all":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = int(arg)
    if n < 1:
        raise ValueError(f"--threads {arg}: not a positive integer or 'all'")
    return n


def measure(torch, nn, F, device, batch, steps, warmup, latent_dim=100):
    torch.manual_seed(1)
    g, d = build(torch, nn, latent_dim)
    g.to(device).train()
    d.to(device).train()
    n_g = sum(p.numel() for p in g.parameters())
    n_d = sum(p.numel() for p in d.parameters())
    assert (n_g, n_d) == (846273, 212865), f"parameter counts drifted: G {n_g}, D {n_d}"
    opt_g = adam(torch, g)
    opt_d = adam(torch, d)
    real = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        gan_step(torch, F, g, d, opt_g, opt_d, real, latent_dim)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss_d, loss_g = gan_step(torch, F, g, d, opt_g, opt_d, real, latent_dim)
    sync()
    secs = time.perf_counter() - t0
    return {
        "framework": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batchSize": batch,
        "steps": steps,
        "warmupSteps": warmup,
        "imagesPerSecond": batch * steps / secs,
        "secondsPerStep": secs / steps,
        "tf32": bool(torch.backends.cudnn.allow_tf32 and device.type == "cuda"),
        "lossD": float(loss_d),
        "lossG": float(loss_g),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 256], help="batch sizes (default 64 256)")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per batch size (default 50)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--threads", default=None, help="CPU threads (torch.set_num_threads): N or all (default: PyTorch's own choice)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and cuDNN (default off: float32)")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"framework": "pytorch", "error": f"PyTorch is not installed (Debian: python3-torch): {e}"}))
        return 3
    if a.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"framework": "pytorch", "error": "torch.cuda.is_available() is False"}))
        return 3
    if a.threads is not None:
        try:
            torch.set_num_threads(cpu_threads(a.threads))
        except ValueError as e:
            print(json.dumps({"framework": "pytorch", "error": str(e)}))
            return 2
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device(a.device)
    for b in a.batch:
        print(json.dumps(measure(torch, nn, F, device, b, a.steps, a.warmup)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
