"""A/B of HTD epochs: this checkout's ``htdviz/distill/htd.py`` against a git revision's.

    python benchmarks/bench_htd_ab.py [--rev <commit>] [--teacher runs/<BPR teacher run>]
                                       [--device cuda] [--repeats 3]

Both versions run in one process on one device, alternating, so that a host's or a GPU's
own speed does not enter the comparison. d_t = 200, d_s = 20, K = 30, batch 1024; each
figure is the training seconds of one epoch (as bench_distill.py) at a fixed temperature
(tau = 1: dense Gumbel-softmax weights; tau = 1e-5: one-hot). Only htd.py is swapped: the
rest of the package (experts, training loop) is this checkout's. --rev defaults to HEAD
(the working tree's change against the last commit).
"""
from __future__ import annotations

import argparse
import subprocess
import types

import numpy as np
import torch
from bench_distill import teacher_representations     # benchmarks/ is the script's folder

from htdviz import data, distill, models
from htdviz.train import TrainConfig, default_device, fit


def htd_at(rev: str) -> type:
    """The HTD class of ``htdviz/distill/htd.py`` at git revision ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:htdviz/distill/htd.py"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"htd_{rev}")
    module.__package__ = "htdviz.distill"          # its relative imports resolve to ours
    exec(compile(source, f"{rev}:htdviz/distill/htd.py", "exec"), module.__dict__)
    return module.HTD


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default="HEAD", help="git revision to compare against")
    parser.add_argument("--teacher", default=None, help="teacher run (default: random)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    ds = data.load_citeulike()
    tu, ti = teacher_representations(args.teacher, ds)

    def epoch(cls, tau: float) -> float:
        model = models.BPRMF(ds.n_users, ds.n_items, 20,
                             generator=torch.Generator().manual_seed(0))
        htd = cls(tu, ti, 20)
        htd.start_epoch = lambda epoch, n_epochs: None        # hold tau fixed
        htd.assignment.temperature = tau
        return fit(model, ds, TrainConfig(epochs=1, eval_every=1), distiller=htd,
                   device=device, progress=False).seconds

    versions = {args.rev: htd_at(args.rev), "checkout": distill.HTD}
    epoch(distill.HTD, 1.0)                                   # warm-up (CUDA context, caches)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; seconds per HTD epoch")
    for tau in (1.0, 1e-5):
        times = {v: [] for v in versions}
        for _ in range(args.repeats):
            for v, cls in versions.items():
                times[v].append(epoch(cls, tau))
        for v, t in times.items():
            print(f"tau={tau:<6g} {v:>12}  " + "  ".join(f"{x:.3f}" for x in t))
        print(f"tau={tau:<6g} ratio {args.rev} / checkout: "
              f"{np.median(times[args.rev]) / np.median(times['checkout']):.2f}x")


if __name__ == "__main__":
    main()
