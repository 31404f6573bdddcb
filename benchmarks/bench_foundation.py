"""Speed of the foundation: one BPR teacher epoch and one full-ranking evaluation.

Settings of docs/method.md §10.5: CiteULike-t reference split, BPR-MF with d = 200, batch 1024.

* teacher epoch: :func:`htdviz.train.fit` for 3 epochs (evaluating only before and after),
  ``FitResult.seconds / 3``, which counts training time only (sampling, batches, Adam);
  the best of ``--fits`` such fits, since other processes on the machine only ever slow a
  run down;
* evaluation: :func:`htdviz.evaluate.full_ranking` of all users on the test split with
  random d = 200 representations, the median of 5 runs after one warm-up;
* Adam variants: the same teacher epochs with the optimiser built as PyTorch's default
  (a for-loop over parameters on CPU) and with ``foreach=True``, against htdviz's choice
  ``fused=True``, fits interleaved so that a busy spell hurts every variant alike.

Each figure is printed with its ratio to the authors' implementation on the same kind of
machine and with the project's goal. Run: ``python benchmarks/bench_foundation.py``
(``--device cpu`` to force the CPU where a GPU exists).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from unittest import mock

import torch

from htdviz import train
from htdviz.data import load_citeulike
from htdviz.evaluate import full_ranking
from htdviz.models import BPRMF

DIM = 200
EPOCHS = 3
# Authors' implementation, docs/method.md §10.5: seconds on a 2-core CPU / one H100.
REFERENCE = {"cpu": {"teacher epoch": 3.0, "evaluation": 14.0},
             "cuda": {"teacher epoch": 0.5, "evaluation": 9.4}}
GOAL = {"cpu": {"teacher epoch": 1.5, "evaluation": 0.5}}


def adam_factory(variant: str):
    """A replacement for htdviz.train._adam that builds one Adam variant."""
    def build(params, config):
        kwargs = {"foreach": dict(foreach=True), "fused": dict(fused=True)}.get(variant, {})
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **kwargs)
    return build


def teacher_epoch_seconds(dataset, device, variant: str | None = None) -> float:
    """Training seconds per epoch of a d = 200 BPR teacher (htdviz.train.fit's loop)."""
    model = BPRMF(dataset.n_users, dataset.n_items, DIM,
                  generator=torch.Generator().manual_seed(0))
    config = train.TrainConfig(epochs=EPOCHS, eval_every=EPOCHS, batch_size=1024)
    if variant is None:                                  # htdviz's own optimiser
        result = train.fit(model, dataset, config, device=device, progress=False)
    else:
        with mock.patch.object(train, "_adam", adam_factory(variant)):
            result = train.fit(model, dataset, config, device=device, progress=False)
    return result.seconds / EPOCHS


def evaluation_seconds(dataset, device, repeats: int = 5) -> float:
    """Median seconds of one full-ranking evaluation (test split, all users)."""
    generator = torch.Generator().manual_seed(0)
    users = torch.randn(dataset.n_users, DIM, generator=generator).to(device)
    items = torch.randn(dataset.n_items, DIM, generator=generator).to(device)
    full_ranking(users, items, dataset, "test")          # warm-up
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        full_ranking(users, items, dataset, "test")      # returns numpy: synchronises
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def report(name: str, seconds: float, device_type: str) -> None:
    line = f"{name:<28s} {seconds:8.3f} s"
    ref = REFERENCE.get(device_type, {}).get(name)
    if ref is not None:
        line += f"   reference {ref:5.1f} s -> {ref / seconds:5.1f}x faster"
    goal = GOAL.get(device_type, {}).get(name)
    if goal is not None:
        line += f"   goal <= {goal} s: {'met' if seconds <= goal else 'NOT met'}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--repeats", type=int, default=5, help="evaluation runs (median)")
    parser.add_argument("--fits", type=int, default=2,
                        help="3-epoch fits per Adam variant (best one counts)")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else train.default_device()

    print(f"htdviz foundation benchmark: torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
             f"{platform.processor() or platform.machine()}"))
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5:
        print(f"note: load average {os.getloadavg()[0]:.1f} before the run; other processes "
              f"competing for the cores slow every figure below")
    dataset = load_citeulike("reference")
    print(f"data: {dataset!r}; BPR-MF d = {DIM}, batch 1024, {EPOCHS} epochs per fit\n")

    variants = {"fused (htdviz)": None, "default": "default", "foreach": "foreach"}
    epochs = {name: [] for name in variants}
    for _ in range(args.fits):
        for name, variant in variants.items():
            epochs[name].append(teacher_epoch_seconds(dataset, device, variant))

    report("teacher epoch", min(epochs["fused (htdviz)"]), device.type)
    report("evaluation", evaluation_seconds(dataset, device, args.repeats), device.type)

    print("\nAdam variants, seconds per teacher epoch (best; all fits):")
    best_fused = min(epochs["fused (htdviz)"])
    for name, seconds in epochs.items():
        print(f"  {name:<15s} {min(seconds):7.3f} s  ({min(seconds) / best_fused:4.2f}x fused)"
              f"   [{', '.join(f'{x:.3f}' for x in seconds)}]", flush=True)


if __name__ == "__main__":
    main()
