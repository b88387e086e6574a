"""One distillation training step of the CPU model, part by part, in float32 and bfloat16.

    python bench/train_step.py [--config training/configs/cpu-lmf-distill6-long.yaml]
        [--data ../shared/data/train] [--student resources/lmf-edsr6-cpu.safetensors]
        [--threads 2] [--repeat 5] [--batches 8]

Batches come from the config's own sampler (``training.train.make_train_set``: 48x48 LR
patches of the training photos, the config's scales, 2304 HR pixels each, batch 16). Timed,
medians of ``--repeat``: the teacher's encoder (bfloat16 where native, as in training), the
teacher's queries in float32 and in bfloat16, and the student's forward + backward + Adam
step in float32 and under bfloat16 autocast. Also reported, over ``--batches`` batches: how
far the teacher's targets move when its queries run in bfloat16 (in levels of 255, against
its float32 queries on the same encoding) and when its encoder does too (against an all-float32
teacher), and the cosine similarity of the student's bfloat16 and float32 gradients.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch
import torch.nn.functional as F

from bench.timing import median_time


def main() -> int:
    from core.checkpoints import load_model
    from core.device import autocast_to
    from core.profile import profile_for
    from training.losses import Teacher, step_loss
    from training.train import load_config, make_train_set

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--config", default=os.path.join(ROOT, "training/configs/cpu-lmf-distill6-long.yaml")
    )
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "train"))
    p.add_argument("--student", default=os.path.join(ROOT, "resources/lmf-edsr6-cpu.safetensors"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batches", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cpu = torch.device("cpu")
    cfg = load_config(a.config)
    cfg["train"]["cache"] = "none"  # only a few batches are read
    data = make_train_set(cfg, a.data, seed=0)
    bsz = int(cfg["train"]["batch_size"])
    batches = []
    for k in range(a.batches):
        items = [data[(k * bsz + i) * 7 % len(data)] for i in range(bsz)]
        batches.append({key: torch.stack([it[key] for it in items]) for key in items[0]})
    student = load_model(a.student, cpu)[0].train()
    for q in student.parameters():
        q.requires_grad_(True)
    fast = profile_for(cpu).compute_dtype
    bf16 = torch.bfloat16

    def norm(b):
        return (b["inp"] - 0.5) / 0.5, b["coord"], b["cell"]

    targets = Teacher(cfg["distill"], cpu, Path(ROOT))  # training's own teacher
    teacher = targets.model.eval()

    def teach(inp, coord, cell, enc_dtype, query_dtype):
        targets.dtype, targets.query_dtype = enc_dtype, query_dtype
        return targets(inp, coord, cell)

    # how far the targets move (levels of 255; outputs are in [-1, 1], so x 127.5)
    dq, de = [], []
    for b in batches:
        inp, coord, cell = norm(b)
        ref = teach(inp, coord, cell, torch.float32, torch.float32)
        enc = teach(inp, coord, cell, fast, torch.float32)
        both = teach(inp, coord, cell, fast, bf16)
        dq.append((both - enc).abs().flatten() * 127.5)
        de.append((both - ref).abs().flatten() * 127.5)
    dq, de = torch.cat(dq), torch.cat(de)

    opt = torch.optim.Adam(student.parameters(), lr=0.0)  # lr 0: the weights stay as loaded

    def grads(b, dtype):  # the student's part of a training step (training's own loss)
        opt.zero_grad(set_to_none=True)
        step_loss(student, b, cpu, None, dtype).backward()
        return torch.cat([q.grad.flatten() for q in student.parameters() if q.grad is not None])

    cos = []
    for b in batches:
        g32, g16 = grads(b, torch.float32), grads(b, bf16)
        cos.append(float(F.cosine_similarity(g32, g16, dim=0)))

    inp, coord, cell = norm(batches[0])
    with torch.no_grad(), autocast_to(cpu, fast):
        feat = teacher.encode(inp).float()

    def query(dtype):
        with torch.no_grad(), autocast_to(cpu, dtype):
            teacher.query_rgb(feat, coord, cell)

    def encode():
        with torch.no_grad(), autocast_to(cpu, fast):
            teacher.encode(inp)

    def step(dtype):
        grads(batches[0], dtype)
        opt.step()

    rows = [
        (
            f"teacher encoder ({str(fast).replace('torch.', '')})",
            median_time(lambda k: encode(), a.repeat),
        ),
        ("teacher queries, float32", median_time(lambda k: query(torch.float32), a.repeat)),
        ("teacher queries, bfloat16", median_time(lambda k: query(bf16), a.repeat)),
        (
            "student forward+backward+Adam, float32",
            median_time(lambda k: step(torch.float32), a.repeat),
        ),
        (
            "student forward+backward+Adam, bfloat16 autocast",
            median_time(lambda k: step(bf16), a.repeat),
        ),
    ]
    print(f"batch {bsz} x {batches[0]['gt'].shape[1]} pixels, {a.threads} thread(s); medians of "
          f"{a.repeat}")
    for name, t in rows:
        print(f"  {name:52s} {t * 1000:7.0f} ms")
    print(f"teacher targets, bfloat16 queries vs float32 queries: mean {float(dq.mean()):.3f}, "
          f"99.9th percentile {float(dq.quantile(0.999)):.2f}, max {float(dq.max()):.2f} levels")
    print(f"teacher targets, bfloat16 encoder and queries vs all float32: mean "
          f"{float(de.mean()):.3f}, 99.9th percentile {float(de.quantile(0.999)):.2f}, max "
          f"{float(de.max()):.2f} levels")
    print(f"student gradients, bfloat16 vs float32: cosine similarity min {min(cos):.4f}, "
          f"mean {statistics.mean(cos):.4f} over {len(cos)} batches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
