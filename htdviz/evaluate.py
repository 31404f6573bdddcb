"""Full-ranking leave-one-out evaluation (docs/method.md §8).

Each user's held-out item is ranked against ALL items; the user's training items and the
other held-out item (the validation item when testing, the test item when validating) are
excluded. With one held-out item, Recall@N is the hit rate and NDCG@N = 1 / log2(rank + 2)
when the item is in the top N (rank 0-based), else 0.

Per batch of users the scores of all items are computed with one matmul, masked items set
to -inf, and ``topk(max(ks))`` gives the ranking; the target's position in it is its rank
(ranks beyond max(ks) are reported as max(ks), "not in any list").
"""
from __future__ import annotations

import numpy as np
import torch

from .data import Dataset

DEFAULT_KS = (10, 20, 50)


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


@torch.no_grad()
def target_ranks(user_emb, item_emb, dataset: Dataset, split: str = "test", max_k: int = 50,
                 batch_size: int = 1024, scorer=None) -> np.ndarray:
    """0-based rank of each user's held-out item in its masked full ranking, shape (n_users,).

    Ranks >= ``max_k`` are returned as ``max_k``.

    Parameters
    ----------
    user_emb : array or tensor of shape (n_users, dim)
    item_emb : array or tensor of shape (n_items, dim)
    dataset : Dataset
    split : {"test", "valid"}
    max_k : int, default 50
        Length of the ranked list that is computed.
    batch_size : int, default 1024
        Users scored at a time; memory is batch_size * n_items floats.
    scorer : callable, optional
        ``scorer(users, out)``: the scores of all items for a batch of user ids, shape
        (B, n_items), written into ``out`` (a model's
        :meth:`~htdviz.models.Recommender.scorer`, NeuMF's); default dot products.
    """
    user_emb, item_emb = _as_tensor(user_emb), _as_tensor(item_emb)
    if user_emb.shape[0] != dataset.n_users or item_emb.shape[0] != dataset.n_items:
        raise ValueError(f"embeddings of shape {tuple(user_emb.shape)} / {tuple(item_emb.shape)} "
                         f"do not fit the data set ({dataset.n_users} users, "
                         f"{dataset.n_items} items)")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"user dim {user_emb.shape[1]} != item dim {item_emb.shape[1]}")
    if not 1 <= max_k <= dataset.n_items:
        raise ValueError(f"max_k must be in [1, n_items={dataset.n_items}], got {max_k}")
    item_emb = item_emb.to(user_emb.dtype)
    device = user_emb.device
    if scorer is None:
        def scorer(users, out):
            return torch.mm(user_emb[users], item_emb.T, out=out)

    def index(array):
        return torch.from_numpy(np.array(array, dtype=np.int64)).to(device)

    targets = index(dataset.held_out(split))
    others = index(dataset.held_out("valid" if split == "test" else "test"))
    indptr, indices = index(dataset.train.indptr), index(dataset.train.indices)

    ranks = torch.empty(dataset.n_users, dtype=torch.int64, device=device)
    # one score buffer for all batches: a fresh (B, n_items) allocation per batch costs the
    # CPU page faults worth ~20% of the evaluation (docs/benchmarks.md)
    buffer = user_emb.new_empty(min(batch_size, dataset.n_users), dataset.n_items)
    for start in range(0, dataset.n_users, batch_size):
        users = torch.arange(start, min(start + batch_size, dataset.n_users), device=device)
        scores = scorer(users, buffer[:len(users)])                 # (B, n_items)
        row = torch.repeat_interleave(users - start, indptr[users + 1] - indptr[users])
        scores[row, indices[indptr[start]:indptr[users[-1] + 1]]] = -torch.inf   # training items
        scores[users - start, others[users]] = -torch.inf           # the other held-out item
        top = scores.topk(max_k, dim=1).indices                     # (B, max_k)
        found = top == targets[users, None]
        ranks[users] = torch.where(found.any(1), found.int().argmax(1), max_k)
    return ranks.cpu().numpy()


def metrics_from_ranks(ranks: np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """Recall@k and NDCG@k averaged over users, from 0-based ranks of one held-out item."""
    ranks = np.asarray(ranks)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    return out


def full_ranking(user_emb, item_emb, dataset: Dataset, split: str = "test", ks=DEFAULT_KS,
                 batch_size: int = 1024, scorer=None) -> dict[str, float]:
    """Recall@k and NDCG@k of full ranking for every k in ``ks`` (``scorer``: see
    :func:`target_ranks`; default dot products).

    Returns a dict with keys like ``"recall@50"`` and ``"ndcg@50"``.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    ranks = target_ranks(user_emb, item_emb, dataset, split, max(ks), batch_size, scorer)
    return metrics_from_ranks(ranks, ks)


def evaluate_model(model, dataset: Dataset, split: str = "test", ks=DEFAULT_KS) -> dict[str, float]:
    """:func:`full_ranking` of a :class:`~htdviz.models.Recommender` (its representations,
    ranked by its :meth:`~htdviz.models.Recommender.scorer`)."""
    users, items = model.representations()
    return full_ranking(users, items, dataset, split, ks, scorer=model.scorer(users, items))


@torch.no_grad()
def ranking_agreement(teacher_users, teacher_items, student_users, student_items,
                      exclude=None, ks=(10, 50), batch_size: int = 1024):
    """Per user, how well the student's top-k items agree with the teacher's top-k.

    Recommendation uses one relation of the topology: each user's scores of the items.
    This measures it directly: both models rank all items by score (dot product) with
    ``exclude`` (the user's training items) removed, and the student's top-k list is
    compared with the teacher's.

    Parameters
    ----------
    teacher_users : array or tensor of shape (n_users, d_t)
    teacher_items : array or tensor of shape (n_items, d_t)
    student_users : array or tensor of shape (n_users, d_s)
    student_items : array or tensor of shape (n_items, d_s)
    exclude : scipy.sparse matrix of shape (n_users, n_items), optional
        Nonzero entries are left out of both rankings (e.g. ``dataset.train``).
    ks : sequence of int, default (10, 50)
    batch_size : int, default 1024
        Users scored at a time (memory: two ``batch_size x n_items`` score blocks).

    Returns
    -------
    pandas.DataFrame
        One row per user: ``overlap@k`` = |S_k ∩ T_k| / k and ``ndcg@k``, the NDCG of the
        student's list when the teacher's top-k items are the relevant ones (1 when the
        student's top k are the teacher's, in any order; about k / n_items by chance).
        ``.mean()`` gives the averages over users.
    """
    import pandas as pd
    import scipy.sparse as sp

    ks = tuple(int(k) for k in np.atleast_1d(ks))
    tu, ti = _as_tensor(teacher_users).float(), _as_tensor(teacher_items).float()
    su, si = _as_tensor(student_users).float(), _as_tensor(student_items).float()
    n_users, n_items = tu.shape[0], ti.shape[0]
    for name, x, n in (("student_users", su, n_users), ("student_items", si, n_items)):
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows like the teacher's, got shape "
                             f"{tuple(x.shape)}")
    if tu.shape[1] != ti.shape[1] or su.shape[1] != si.shape[1]:
        raise ValueError("users and items of each model must have the same dim")
    if not ks or min(ks) < 1 or max(ks) > n_items:
        raise ValueError(f"ks must be integers in [1, n_items={n_items}], got {ks}")
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape != (n_users, n_items):
            raise ValueError(f"exclude must have shape ({n_users}, {n_items}), got "
                             f"{exclude.shape}")
    max_k = max(ks)
    discount = 1.0 / torch.log2(torch.arange(max_k, dtype=torch.float64) + 2.0)  # (max_k,)
    out = {f"{m}@{k}": np.empty(n_users) for k in ks for m in ("overlap", "ndcg")}
    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        t_scores, s_scores = tu[start:stop] @ ti.T, su[start:stop] @ si.T    # (B, n_items)
        if exclude is not None:
            block = exclude[start:stop].tocoo()
            rows, cols = torch.from_numpy(block.row).long(), torch.from_numpy(block.col).long()
            t_scores[rows, cols] = -torch.inf
            s_scores[rows, cols] = -torch.inf
        t_top = t_scores.topk(max_k, dim=1).indices                          # (B, max_k)
        s_top = s_scores.topk(max_k, dim=1).indices
        for k in ks:
            hit = (s_top[:, :k, None] == t_top[:, None, :k]).any(2).double()  # (B, k)
            out[f"overlap@{k}"][start:stop] = (hit.sum(1) / k).numpy()
            out[f"ndcg@{k}"][start:stop] = ((hit @ discount[:k]) / discount[:k].sum()).numpy()
    return pd.DataFrame(out)
