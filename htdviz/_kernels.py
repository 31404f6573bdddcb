"""Compiled CPU loops (numba), imported on first use: the sparse teacher step (the batch's
distinct rows, the BPR loss and its gradient, row-wise Adam), the negative sampler's
membership test, and NeuMF's per-pair scores for full ranking (``add_relu_dot``).

All are bound by memory on the CPU: each touches a row once where a chain of torch (or
numpy) operations reads and writes it once per operation, or searches a row of the
training matrix instead of all pairs.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch


def use_torch_threads() -> int:
    """Run numba's parallel loops on as many threads as torch uses (a study worker with one
    torch thread gets one numba thread); returns that number.

    Launching numba's thread pool (the first call) sets the OpenMP thread count of the whole
    process to numba's (every core), which torch reads as its own, so torch's count is set
    back afterwards: a run asked to use one thread keeps one.
    """
    torch_threads = torch.get_num_threads()
    threads = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    torch.set_num_threads(torch_threads)
    return threads


@numba.njit(parallel=True, cache=True)
def row_adam(table, first, second, ids, grad, lr, beta1, beta2, weight_decay, eps,
             sqrt_correction2):
    """Adam with L2 ``weight_decay`` on rows ``ids`` of ``table`` (n, d) and of its moments
    ``first`` and ``second``, in place; ``grad`` (len(ids), d) is the rows' gradient and
    ``lr`` is already divided by the first moment's bias correction."""
    # float32, in the order of torch's Adam for float32 parameters (1 - beta rounded once)
    lr, weight_decay, eps = np.float32(lr), np.float32(weight_decay), np.float32(eps)
    rate1, rate2, beta2 = np.float32(1 - beta1), np.float32(1 - beta2), np.float32(beta2)
    sqrt_correction2 = np.float32(sqrt_correction2)
    for r in numba.prange(ids.shape[0]):
        i = ids[r]
        for j in range(table.shape[1]):
            value = table[i, j]
            g = grad[r, j] + weight_decay * value
            m = first[i, j]
            m = m + rate1 * (g - m)
            v = second[i, j] * beta2 + rate2 * g * g
            first[i, j] = m
            second[i, j] = v
            table[i, j] = value - lr * (m / (math.sqrt(v) / sqrt_correction2 + eps))


@numba.njit(cache=True)
def unique_inverse(ids, slot):
    """The distinct values of ``ids`` in order of first appearance, and each entry's
    position among them (``torch.unique(ids, return_inverse=True)`` without the sort).

    ``slot`` is scratch space with one entry per possible id, all -1 on entry and again on
    return.
    """
    distinct = np.empty(ids.shape[0], dtype=np.int64)
    inverse = np.empty(ids.shape[0], dtype=np.int64)
    count = 0
    for k in range(ids.shape[0]):
        position = slot[ids[k]]
        if position < 0:
            position = count
            slot[ids[k]] = position
            distinct[position] = ids[k]
            count += 1
        inverse[k] = position
    for position in range(count):
        slot[distinct[position]] = -1
    return distinct[:count], inverse


@numba.njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def bpr_grad(user_table, item_table, user_ids, item_ids, user_of, pos_of, neg_of, threads):
    """The BPR loss of a batch of triples and its gradient, from the tables' rows.

    Triple b is (user ``user_ids[user_of[b]]``, positive ``item_ids[pos_of[b]]``, negative
    ``item_ids[neg_of[b]]``). Returns sum_b -log sigmoid(<u, i+> - <u, j->) and the
    gradients with respect to the touched rows, (len(user_ids), d) and (len(item_ids), d),
    row for row with the ids. Each of ``threads`` writers owns the gradient rows whose
    number modulo ``threads`` is its own, so triples that share a row never write it at
    the same time.
    """
    n, dim = user_of.shape[0], user_table.shape[1]
    losses = np.empty(n, dtype=np.float64)
    slopes = np.empty(n, dtype=np.float32)
    for b in numba.prange(n):
        user = user_table[user_ids[user_of[b]]]
        pos, neg = item_table[item_ids[pos_of[b]]], item_table[item_ids[neg_of[b]]]
        x = np.float32(0)                      # float32 and vectorised, as torch sums
        for j in range(dim):
            x += user[j] * (pos[j] - neg[j])
        x = np.float64(x)
        # -log sigmoid(x) = log(1 + exp(-x)), written so that exp cannot overflow
        losses[b] = math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x)) - x
        slopes[b] = -1.0 / (1.0 + math.exp(x))                           # d loss / dx
    user_grad = np.empty((user_ids.shape[0], dim), dtype=user_table.dtype)
    item_grad = np.empty((item_ids.shape[0], dim), dtype=item_table.dtype)
    for owner in numba.prange(threads):
        for row in range(owner, user_grad.shape[0], threads):
            user_grad[row] = 0
        for row in range(owner, item_grad.shape[0], threads):
            item_grad[row] = 0
        for b in range(n):
            user = user_table[user_ids[user_of[b]]]
            pos, neg = item_table[item_ids[pos_of[b]]], item_table[item_ids[neg_of[b]]]
            if user_of[b] % threads == owner:
                grad = user_grad[user_of[b]]
                for j in range(dim):
                    grad[j] += slopes[b] * (pos[j] - neg[j])
            if pos_of[b] % threads == owner:
                grad = item_grad[pos_of[b]]
                for j in range(dim):
                    grad[j] += slopes[b] * user[j]
            if neg_of[b] % threads == owner:
                grad = item_grad[neg_of[b]]
                for j in range(dim):
                    grad[j] -= slopes[b] * user[j]
    return losses.sum(), user_grad, item_grad


@numba.njit(parallel=True, cache=True)
def stored_in_rows(indptr, indices, rows, cols):
    """Whether each (rows[k], cols[k]) is an entry of the CSR structure (indptr, indices),
    whose indices are sorted within each row: a binary search in that row alone."""
    out = np.empty(rows.shape[0], dtype=np.bool_)
    for k in numba.prange(rows.shape[0]):
        lo, end = indptr[rows[k]], indptr[rows[k] + 1]
        hi, col = end, cols[k]
        while lo < hi:
            mid = (lo + hi) // 2
            if indices[mid] < col:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo < end and indices[lo] == col
    return out


@numba.njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True)
def add_relu_dot(user_part, item_part, weights, out):
    """``out[u, i] += sum_k weights[k] * max(user_part[u, k] + item_part[i, k], 0)``, in
    place: NeuMF's one hidden MLP layer for every (user, item) pair, its first layer
    factored into a user part (B, h) and an item part (n_items, h). Each pair's h values
    stay in registers, where torch would write and read a (B, n_items, h) block."""
    zero = np.float32(0)
    for u in numba.prange(user_part.shape[0]):
        a = user_part[u]
        for i in range(item_part.shape[0]):
            b = item_part[i]
            total = zero
            for k in range(a.shape[0]):
                total += weights[k] * max(a[k] + b[k], zero)
            out[u, i] += total
