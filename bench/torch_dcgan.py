#!/usr/bin/env python3
"""The DCGAN that distgan's compute bench trains, in PyTorch, timed the same way.

Model (docs/gpu.md, /work/shared/facts.md "DCGAN-MNIST"; width 1):
  G: dense 100 -> 7*7*128 (no bias), BN, leakyReLU(0.2), reshape 7x7x128,
     convT 64 5x5 s2 'same' (no bias), BN, leakyReLU(0.2), convT 1 5x5 s2 'same' (+bias), tanh
     -> 846,273 trainable parameters
  D: conv 64 5x5 s2 'same', leakyReLU(0.2), conv 128 5x5 s2 'same', leakyReLU(0.2), flatten, dense 1
     -> 212,865 trainable parameters
BN: momentum 0.01 in PyTorch's convention (= Keras/tfjs 0.99), eps 1e-3, as distgan.

One step = distgan's trainer step:
  D phase: z ~ N(0, I); fake = G(z) (training mode); loss_D = 1/2 [mean softplus(-D(x)) + mean softplus(D(fake))];
           backward into D only; Adam(D).
  G phase: fresh z; loss_G = mean softplus(-D(G(z))); backward into G; Adam(G).
Adam: lr 2e-4, betas (0.5, 0.999), eps 1e-8 (distgan's defaults).

Real images are a fixed random batch in [-1, 1] already on the device and latents are drawn on the
device: this is how a PyTorch user would feed a GPU, so the figure is PyTorch at its natural best.
Float32 throughout; TF32 is OFF unless --tf32 (distgan's WebGPU path computes in float32).
Warm-up steps (cuDNN autotuning, allocator growth) are not timed; the timed loop ends with a
device synchronize.

Prints one JSON line per batch size:
  {"framework": "pytorch", "device": ..., "batchSize": B, "imagesPerSecond": ..., "secondsPerStep": ..., ...}
Usage: python3 bench/torch_dcgan.py [--batch 64 256] [--steps 50] [--warmup 10] [--device cuda|cpu] [--tf32]
"""
import argparse
import json
import sys
import time


def build(torch, nn, latent_dim=100):
    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(latent_dim, 7 * 7 * 128, bias=False)
            self.bn0 = nn.BatchNorm1d(7 * 7 * 128, momentum=0.01, eps=1e-3)
            self.convt1 = nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64, momentum=0.01, eps=1e-3)
            self.convt2 = nn.ConvTranspose2d(64, 1, 5, stride=2, padding=2, output_padding=1, bias=True)
            self.act = nn.LeakyReLU(0.2)

        def forward(self, z):
            h = self.act(self.bn0(self.dense(z)))
            h = h.view(-1, 128, 7, 7)
            h = self.act(self.bn1(self.convt1(h)))
            return torch.tanh(self.convt2(h))

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 64, 5, stride=2, padding=2)
            self.conv2 = nn.Conv2d(64, 128, 5, stride=2, padding=2)
            self.dense = nn.Linear(7 * 7 * 128, 1)
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            h = self.act(self.conv1(x))
            h = self.act(self.conv2(h))
            return self.dense(h.flatten(1))

    return Generator(), Discriminator()


def measure(torch, nn, F, device, batch, steps, warmup, latent_dim=100):
    torch.manual_seed(1)
    g, d = build(torch, nn, latent_dim)
    g.to(device).train()
    d.to(device).train()
    n_g = sum(p.numel() for p in g.parameters())
    n_d = sum(p.numel() for p in d.parameters())
    assert (n_g, n_d) == (846273, 212865), f"parameter counts drifted: G {n_g}, D {n_d}"
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    real = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1

    def step():
        # D phase
        z = torch.randn(batch, latent_dim, device=device)
        with torch.no_grad():
            fake = g(z)
        opt_d.zero_grad(set_to_none=True)
        loss_d = 0.5 * (F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean())
        loss_d.backward()
        opt_d.step()
        # G phase
        z = torch.randn(batch, latent_dim, device=device)
        opt_g.zero_grad(set_to_none=True)
        loss_g = F.softplus(-d(g(z))).mean()
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss_d, loss_g = step()
    sync()
    secs = time.perf_counter() - t0
    return {
        "framework": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
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
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and cuDNN (default off: float32)")
    a = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"framework": "pytorch", "error": f"PyTorch is not installed: {e}"}))
        return 3
    if a.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"framework": "pytorch", "error": "torch.cuda.is_available() is False"}))
        return 3
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device(a.device)
    for b in a.batch:
        print(json.dumps(measure(torch, nn, F, device, b, a.steps, a.warmup)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
