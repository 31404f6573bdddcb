"""HTD's entity level on the CPU: large same-group blocks whole, or in tiles.

    python benchmarks/bench_entity_level.py [--rounds 7]

Forward and backward of ``htd.within_group_error`` (positive pairs only, d_t = 200,
d_s = 20) on the group layouts of a Foursquare batch of 1,024 interactions (about 1,000
unique users and 1,900 unique items), as HTD's hard groups take them during a run: spread
over 30 groups each (the first epochs), most users in one group and the items in four (the
middle epochs), and every user in one group and every item in another (the last epochs;
docs/benchmarks.md, "A whole HTD run on Foursquare"). Each round times every layout with
blocks whole (``TILE`` larger than any block) and in tiles of ``htd.TILE``, interleaved;
prints the median milliseconds and the ratio tiles / whole.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from htdviz.distill import htd

USERS, ITEMS = 1000, 1900


def layouts() -> dict[str, torch.Tensor]:
    """Group labels of the batch's users then items (item groups numbered after the users')."""
    def spread(n, k, offset):
        return torch.arange(n) % k + offset

    def shares(n, fractions, offset):
        sizes = [round(n * f) for f in fractions]
        sizes[-1] = n - sum(sizes[:-1])
        return torch.repeat_interleave(torch.arange(len(sizes)) + offset, torch.tensor(sizes))

    return {
        "spread over 30 + 30": torch.cat([spread(USERS, 30, 0), spread(ITEMS, 30, 30)]),
        "users 85% in one, items in 4": torch.cat([shares(USERS, [0.85, 0.1, 0.05], 0),
                                                   shares(ITEMS, [0.25] * 4, 30)]),
        "one group each": torch.cat([torch.zeros(USERS, dtype=torch.long),
                                     torch.full((ITEMS,), 30)]),
    }


def step(teacher, student, labels) -> float:
    tic = time.perf_counter()
    htd.within_group_error(teacher, student, labels, True, "blocks").backward()
    return time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(USERS + ITEMS, 200, generator=g)
    student = torch.randn(USERS + ITEMS, 20, generator=g).requires_grad_()
    tile = htd.TILE
    times = {(name, mode): [] for name in layouts() for mode in ("whole", "tiles")}
    for _ in range(args.rounds):
        for name, labels in layouts().items():
            for mode in ("whole", "tiles"):
                htd.TILE = tile if mode == "tiles" else USERS + ITEMS
                step(teacher, student, labels)                       # warm-up
                times[name, mode].append(step(teacher, student, labels))
    htd.TILE = tile
    print(f"within_group_error forward + backward, {torch.get_num_threads()} threads, "
          f"TILE = {tile}, median of {args.rounds} rounds")
    print(f"{'layout':32s} {'whole':>9s} {'tiles':>9s} {'ratio':>6s}")
    for name in layouts():
        whole, tiles = (statistics.median(times[name, m]) * 1e3 for m in ("whole", "tiles"))
        print(f"{name:32s} {whole:7.1f} ms {tiles:7.1f} ms {tiles / whole:6.2f}")


if __name__ == "__main__":
    main()
