#!/usr/bin/env python3
"""Runs the G of a distgan checkpoint in PyTorch, reading the file with no safetensors package.

  python3 test/helpers/torch_generator_from_checkpoint.py CKPT Z_F32 N OUT_F32

CKPT: a distgan checkpoint (safetensors, docs/checkpoints.md). Z_F32: N x latentDim float32 LE.
Verifies the file's digest (__metadata__.sha256 over the file with that value as 64 zeros), builds
bench/torch_dcgan.py's Generator for the checkpoint's model spec (tf_same padding), loads every
generator.* tensor with load_state_dict (strict), runs it in eval mode (BN uses the moving
statistics) and writes its output, N x H x W x C float32 LE (distgan's NHWC order), to OUT_F32.
Prints one JSON line describing what it loaded.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from torch_dcgan import generator_from_spec  # noqa: E402


def read_safetensors(path):
    """(metadata, {name: tensor}) of a safetensors file: 8-byte LE header length, JSON header, buffer."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__")
    # The digest: the whole file with its own value replaced by 64 "0".
    mark = b'"sha256":"' + meta["sha256"].encode() + b'"'
    at = data.index(mark, 8, 8 + n) + len(b'"sha256":"')
    zeroed = data[:at] + b"0" * 64 + data[at + 64 :]
    if hashlib.sha256(zeroed).hexdigest() != meta["sha256"]:
        raise SystemExit(f"{path}: SHA-256 mismatch")
    buf = data[8 + n :]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(buf[b:e]), dtype=torch.float32).reshape(t["shape"])
    return meta, tensors


def main():
    ckpt, z_path, n, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    meta, tensors = read_safetensors(ckpt)
    spec = json.loads(meta["model"])
    g = generator_from_spec(torch, torch.nn, spec, tf_same=True)
    state = {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")}
    g.load_state_dict(state, strict=True)
    g.eval()
    z = torch.from_numpy(np.fromfile(z_path, dtype="<f4").reshape(n, spec["latentDim"]))
    with torch.no_grad():
        out = g(z)
    out.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tofile(out_path)
    print(json.dumps({
        "torch": torch.__version__,
        "step": int(meta["step"]),
        "generatorTensors": sorted(state),
        "otherTensors": sorted(k for k in tensors if not k.startswith("generator.")),
        "outputShape": list(out.shape),
    }))


if __name__ == "__main__":
    main()
