"""Subnormal floats are flushed in torch's worker threads while training runs
(htdviz._threads), even when the process used its thread pool before training.

Each check runs in a fresh Python process with two torch threads: the test session runs
with one (tests/conftest.py), and the point is a pool that exists before ``fit``.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch


def _can_flush() -> bool:
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    return supported


pytestmark = pytest.mark.skipif(not _can_flush(),
                                reason="this CPU cannot flush subnormals (not x86 with SSE3)")

# A parallel op on subnormal inputs: with denormals-are-zero set in a thread, the part of
# the product that thread computes is exactly 0. 4M elements split over both threads.
PRELUDE = """
import torch
torch.set_num_threads(2)
subnormal = torch.full((4_000_000,), 1e-39)
def nonzero():
    return int(((subnormal * 1.0) != 0).sum())
(torch.randn(2_000_000) * 2).sum()        # the worker threads exist from here on
"""


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_calling_thread_alone_leaves_the_workers_computing_subnormals():
    """The premise: torch.set_flush_denormal after the pool exists flushes only the part
    the calling thread computes (if this ever fails, torch fixed it and _threads can go)."""
    before, after = run("""
        print(nonzero())
        torch.set_flush_denormal(True)
        print(nonzero())
    """)
    assert int(before) == 4_000_000
    assert 0 < int(after) < 4_000_000


def test_flush_denormals_reaches_every_worker_and_restores():
    inside, after = run("""
        from htdviz._threads import flush_denormals
        with flush_denormals():
            print(nonzero())
        print(nonzero())
    """)
    assert int(inside) == 0
    assert int(after) == 4_000_000


def test_nested_blocks_keep_flushing_until_the_outer_one_ends():
    inner_end, outer_end = run("""
        from htdviz._threads import flush_denormals
        with flush_denormals():
            with flush_denormals():
                pass
            print(nonzero())
        print(nonzero())
    """)
    assert int(inner_end) == 0
    assert int(outer_end) == 4_000_000


def test_fit_flushes_in_every_worker_thread():
    """A distiller measures, during training, what a parallel op makes of subnormals."""
    during, after = run("""
        from htdviz import data, models
        from htdviz.train import TrainConfig, fit

        class Probe(torch.nn.Module):
            seen = []
            def forward(self, users, items, user_repr, item_repr):
                self.seen.append(nonzero())
                return user_repr.sum() * 0.0

        dataset = data.synthetic(n_users=60, n_items=90, n_groups=3, dim=4,
                                 items_per_user=6, seed=0)
        model = models.BPRMF(dataset.n_users, dataset.n_items, 8)
        fit(model, dataset, TrainConfig(epochs=1, eval_every=1), distiller=Probe(),
            device="cpu", progress=False)
        print(max(Probe.seen))
        print(nonzero())
    """)
    assert int(during) == 0
    assert int(after) == 4_000_000
