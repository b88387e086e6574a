"""Would int8 make the paper model's LIIF decoder usable on a CPU? (the CPU-pixels issue)

    python bench/decoder_int8.py [--rows 32768] [--threads 2]

Times the decoder's per-pixel part (after the folded first layer: ReLU, three 256 x 256
layers, the 256 x 3 output; ``core.models.mlp.mlp_tail``, what the renderer runs) on random
pre-activations in float32, and the same layers through PyTorch's dynamic int8 linear
(weights per output channel, activations per batch, fbgemm/x86), and prints the speed-up and
how far the int8 outputs move, in 8-bit levels (the decoder's output spans [-1, 1]).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core import zoo  # noqa: E402
from core.models.mlp import mlp_tail  # noqa: E402


def best_of(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=32768, help="pixels x ensemble members")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    lins = zoo.load("paper").imnet.linears[1:]
    h1 = torch.randn(a.rows, 256, generator=torch.Generator().manual_seed(0)) * 2
    spare = torch.empty(a.rows, 256)
    ref = mlp_tail(lins, h1.clone(), spare)
    t32 = best_of(lambda: mlp_tail(lins, h1.clone(), spare))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (quantized tensors are deprecated in torch)
        packed = []
        for lin in lins:
            w = lin.weight.detach()
            scale = (w.abs().amax(1) / 127).double()
            q = torch.quantize_per_channel(w, scale, torch.zeros(len(scale), dtype=torch.long),
                                           0, torch.qint8)
            packed.append(torch.ops.quantized.linear_prepack(q, lin.bias.detach()))

    def int8(x):
        x = torch.relu(x)
        for i, pk in enumerate(packed):
            x = torch.ops.quantized.linear_dynamic(x, pk, reduce_range=True)
            if i < len(packed) - 1:
                x = torch.relu_(x)
        return x
    out = int8(h1.clone())
    t8 = best_of(lambda: int8(h1.clone()))
    err = (out - ref).abs() * 0.5 * 255
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {a.threads} threads")
    print("| arithmetic | us per row | speed-up | max levels | mean levels |")
    print("|---|---|---|---|---|")
    print(f"| float32 | {t32 / a.rows * 1e6:.2f} | 1.00 | 0 | 0 |")
    print(f"| int8 dynamic | {t8 / a.rows * 1e6:.2f} | {t32 / t8:.2f} | {err.max():.1f} | "
          f"{err.mean():.2f} |")


if __name__ == "__main__":
    main()
