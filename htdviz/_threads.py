"""Subnormal floats flushed to zero in every thread that computes for torch on the CPU.

Many x86 CPUs handle subnormal floats (below ~1.2e-38 in float32) far slower than normal
ones (docs/benchmarks.md, "Subnormal floats", says on which). Training meets them: a
trained teacher's topology gives tiny gradients, and as HTD's Gumbel-softmax temperature
falls most of its weights pass through the subnormal range before they underflow to zero.
Values that small carry nothing here, so training flushes them (flush-to-zero and
denormals-are-zero).

``torch.set_flush_denormal`` sets the flags of the calling thread only; a thread inherits
them when it is created. torch's intra-op worker threads (OpenMP) are created by the first
parallel operation of the process, and every pipeline runs one before training (building a
model initialises its embedding tables in parallel), so they would keep computing with
subnormals. :func:`flush_denormals` therefore also runs ``torch.set_flush_denormal`` once on
each worker of the OpenMP runtime that torch uses (through its ``GOMP_parallel`` entry
point, which GNU libgomp, LLVM's libomp and Intel's libiomp export), and clears the flags
again afterwards.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from pathlib import Path

import torch

_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _openmp_runtimes() -> list[ctypes.CDLL]:
    """The OpenMP runtimes loaded into this process that export ``GOMP_parallel`` (Linux:
    read from /proc/self/maps; elsewhere none)."""
    maps = Path("/proc/self/maps")
    if not sys.platform.startswith("linux") or not maps.exists():
        return []
    paths = sorted({line.split(maxsplit=5)[-1].strip() for line in maps.read_text().splitlines()
                    if any(name in line for name in ("libgomp", "libiomp", "libomp"))
                    and "/" in line})
    runtimes = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)                   # the loaded copy: same handle
            entry = library.GOMP_parallel
        except (OSError, AttributeError):
            continue
        entry.argtypes = [_TASK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        entry.restype = None
        runtimes.append(library)
    return runtimes


def _set_in_workers(on: bool) -> int:
    """``torch.set_flush_denormal(on)`` in the calling thread and in every worker of each
    OpenMP runtime's team of ``torch.get_num_threads()`` threads; returns how many distinct
    threads ran it (the calling thread included)."""
    threads: set[int] = set()

    def task(_):
        torch.set_flush_denormal(on)
        threads.add(threading.get_ident())

    torch.set_flush_denormal(on)
    callback = _TASK(task)                                # kept alive during the calls
    for runtime in _openmp_runtimes():
        # CDLL calls release the GIL, so each worker's callback takes it in turn
        runtime.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
    return len(threads) or 1


def _flushing() -> bool:
    """Whether the calling thread flushes subnormals now (a one-element product, computed
    in this thread, of a subnormal is 0 exactly then)."""
    return (torch.tensor(1e-40) * 1.0).item() == 0.0


@contextlib.contextmanager
def flush_denormals():
    """Flush subnormal floats to zero in the calling thread and torch's CPU worker threads
    while the block runs. The flags are cleared again afterwards (torch's default), unless
    the calling thread was flushing already (an enclosing block: it stays in force).

    Does nothing where the CPU cannot flush (``torch.set_flush_denormal`` returns False:
    not x86 with SSE3).

    Examples
    --------
    >>> import torch
    >>> with flush_denormals():                # doctest: +SKIP
    ...     (torch.full((3,), 1e-40) * 1.0).tolist()
    [0.0, 0.0, 0.0]
    """
    was_flushing = _flushing()
    if not torch.set_flush_denormal(True):
        yield
        return
    try:
        _set_in_workers(True)
        yield
    finally:
        if not was_flushing:
            _set_in_workers(False)


@contextlib.contextmanager
def torch_threads(n_threads: int | None):
    """Run the block with ``n_threads`` torch threads (None: leave as is), then restore.

    Small matrix work (eigenproblems of d x d matrices, probes with mini-batches) runs far
    faster on one thread on a busy machine: the threads wait on each other more than they
    compute (docs/benchmarks.md, "Analysis").
    """
    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
