"""RRD: relaxed ranking distillation.

Kang et al., "DE-RRD: A Knowledge Distillation Framework for Recommender System", CIKM
2020 (docs/method.md §7). Prediction-level: the student learns the teacher's ranking of
items for each user, not its representations, so it adds to any representation-level
method (``htd+rrd``, ``de+rrd``).

- The teacher's list: per user, its top ``n_top`` = 500 items by the teacher's score, the
  user's training items excluded, in rank order (:func:`teacher_top_items`, computed once).
- Once per epoch, per user (:class:`RankSampler`): K = 40 "interesting" positions drawn
  without replacement from ranks 1..500 with probability proportional to exp(-rank / T),
  T = 10, then sorted, so the K items stand in the teacher's order; and L = 40
  "uninteresting" items drawn uniformly without replacement among the items that are
  neither the user's training items nor in its list.
- Per batch: for the batch's unique users, S1 (U, K) = student scores of the interesting
  items in the teacher's order, S2 (U, L) those of the uninteresting ones;
  L_RRD = -sum_u sum_k [S1_k - log(sum_{j>=k} exp(S1_j) + sum_l exp(S2_l))]
  (:func:`relaxed_ranking_loss`): the interesting items in the teacher's order, every
  uninteresting item below them, their mutual order ignored.

The authors later found the rank sampling unnecessary and harmful (their repository's
"Update"; Kang et al., WWW 2023): ``rank_sampling=False`` takes the teacher's top K items
themselves.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..options import Option
from .base import Distiller, register_method


def relaxed_ranking_loss(interesting: torch.Tensor, uninteresting: torch.Tensor) -> torch.Tensor:
    """L_RRD summed over users.

    Parameters
    ----------
    interesting : tensor of shape (U, K)
        Student scores of each user's interesting items, in the teacher's order.
    uninteresting : tensor of shape (U, L)
        Student scores of each user's uninteresting items.

    Notes
    -----
    The log of sum_{j>=k} exp(S1_j) + sum_l exp(S2_l) is taken as a log-sum-exp of the
    suffix's log-cum-sum-exp and the uninteresting items' log-sum-exp, so large scores do
    not overflow; the value is that of the literal sum of exponentials.
    """
    suffix = torch.logcumsumexp(interesting.flip(1), dim=1).flip(1)           # (U, K)
    below = torch.logsumexp(uninteresting, dim=1, keepdim=True)               # (U, 1)
    log_denominator = torch.logaddexp(suffix, below)                          # (U, K)
    return -(interesting - log_denominator).sum()


@torch.no_grad()
def teacher_top_items(teacher_users: torch.Tensor, teacher_items: torch.Tensor,
                      train: sp.csr_matrix, n_top: int = 500, chunk: int = 1024,
                      scorer=None) -> np.ndarray:
    """Each user's top ``n_top`` items by the teacher's score (<t_u, t_i>, or ``scorer``'s),
    training items excluded, best first.

    Parameters
    ----------
    teacher_users : tensor of shape (n_users, d_t)
    teacher_items : tensor of shape (n_items, d_t)
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
        The training interactions (excluded from the lists).
    n_top : int, default 500
    chunk : int, default 1024
        Users scored at once: memory chunk x n_items floats.
    scorer : callable, optional
        ``scorer(users)`` -> the teacher's scores of every item, (len(users), n_items), where
        they are not dot products of the representations (a NeuMF teacher's
        :meth:`~htdviz.models.Recommender.scorer`).

    Returns
    -------
    ndarray of int64, shape (n_users, n_top)
    """
    n_users, n_items = train.shape
    most_trained = int(np.diff(train.indptr).max()) if n_users else 0
    if n_top + most_trained > n_items:
        raise ValueError(f"n_top must leave room for every user's training items: n_top "
                         f"{n_top} + {most_trained} training items > {n_items} items")
    out = np.empty((n_users, n_top), dtype=np.int64)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        scores = teacher_users[start:stop] @ teacher_items.T if scorer is None else \
            scorer(torch.arange(start, stop)).clone()                     # (c, n_items)
        block = train[start:stop].tocoo()
        scores[torch.from_numpy(block.row.astype(np.int64)),
               torch.from_numpy(block.col.astype(np.int64))] = float("-inf")
        out[start:stop] = scores.topk(n_top, dim=1).indices.cpu().numpy()
    return out


class RankSampler:
    """Each epoch's interesting and uninteresting items of every user (see the module).

    Parameters
    ----------
    top_items : ndarray of int64, shape (n_users, n_top)
        The teacher's lists (:func:`teacher_top_items`).
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
    n_interesting, n_uninteresting : int, default 40, 40
        K and L.
    temperature : float, default 10
        T of the rank weights exp(-rank / T).
    rank_sampling : bool, default True
        False: the interesting items are the teacher's top K, every epoch.
    """

    def __init__(self, top_items: np.ndarray, train: sp.csr_matrix, n_interesting: int = 40,
                 n_uninteresting: int = 40, temperature: float = 10.0,
                 rank_sampling: bool = True):
        n_users, n_top = top_items.shape
        if not 1 <= n_interesting <= n_top:
            raise ValueError(f"n_interesting must be in [1, {n_top}], got {n_interesting}")
        if n_uninteresting < 1:
            raise ValueError(f"n_uninteresting must be >= 1, got {n_uninteresting}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.top_items, self.train = top_items, train.tocsr()
        self.n_interesting, self.n_uninteresting = n_interesting, n_uninteresting
        self.rank_sampling = rank_sampling
        # log of the rank weights exp(-rank / T), ranks 1..n_top
        self.log_weights = -np.arange(1, n_top + 1, dtype=np.float64) / temperature
        n_excluded = np.diff(self.train.indptr) + n_top
        if (train.shape[1] - n_excluded < n_uninteresting).any():
            raise ValueError(f"n_uninteresting {n_uninteresting} exceeds the items left to "
                             f"some user (neither trained on nor in the teacher's list)")

    def interesting_positions(self, generator: torch.Generator | None = None) -> np.ndarray:
        """Positions (0-based ranks) of each user's interesting items, ascending:
        (n_users, K). Drawn without replacement in proportion to the rank weights by the
        Gumbel-top-k trick, which has the distribution of successive weighted draws
        without replacement (``torch.multinomial(..., replacement=False)``)."""
        n_users, n_top = self.top_items.shape
        if not self.rank_sampling:
            return np.broadcast_to(np.arange(self.n_interesting), (n_users, self.n_interesting))
        noise = -torch.empty(n_users, n_top, dtype=torch.float64).exponential_(
            generator=generator).log()                                    # Gumbel(0, 1)
        keys = torch.from_numpy(self.log_weights) + noise
        chosen = keys.topk(self.n_interesting, dim=1).indices
        return chosen.sort(dim=1).values.numpy()

    def uninteresting_items(self, generator: torch.Generator | None = None) -> np.ndarray:
        """L items per user, uniform without replacement among those neither trained on
        nor in the user's list: (n_users, L). Drawn by rejection: uniform candidates,
        excluded ones and repeats redrawn (each user's first L fresh candidates, in the
        order drawn; all users at once)."""
        n_users, n_items = self.train.shape
        n_wanted = self.n_uninteresting
        out = np.full((n_users, n_wanted), -1, dtype=np.int64)
        filled = np.zeros(n_users, dtype=np.int64)
        todo = np.arange(n_users)
        while todo.size:
            # a few spare candidates per user, so that most users finish in one round
            candidates = torch.randint(n_items, (todo.size, n_wanted + 8),
                                       generator=generator).numpy()
            excluded = self._excluded_keys()
            keys = todo[:, None] * n_items + candidates
            at = np.minimum(np.searchsorted(excluded, keys), excluded.size - 1)
            fresh = (excluded[at] != keys) & _first_occurrences(candidates)
            fresh &= ~(candidates[:, :, None] == out[todo][:, None, :]).any(axis=2)  # taken
            rank = np.cumsum(fresh, axis=1)                    # 1, 2, ... among the fresh
            use = fresh & (rank <= (n_wanted - filled[todo])[:, None])
            rows, cols = np.nonzero(use)
            out[todo[rows], filled[todo[rows]] + rank[rows, cols] - 1] = candidates[rows, cols]
            filled[todo] += use.sum(axis=1)
            todo = todo[filled[todo] < n_wanted]
        return out

    def _excluded_keys(self) -> np.ndarray:
        """user * n_items + item of every (user, item) trained on or in the user's list,
        sorted (computed once, at the first draw)."""
        if getattr(self, "_excluded", None) is None:
            n_users, n_items = self.train.shape
            trained = np.repeat(np.arange(n_users), np.diff(self.train.indptr)) * n_items + \
                self.train.indices
            listed = (np.arange(n_users)[:, None] * n_items + self.top_items).ravel()
            # sorted, repeats kept (searchsorted needs no more; np.sort is far quicker
            # than np.unique on millions of keys)
            self._excluded = np.sort(np.concatenate([trained, listed]))
        return self._excluded

    def sample(self, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One epoch's (interesting items (n_users, K) in the teacher's order,
        uninteresting items (n_users, L)), drawn from ``generator`` (default: the global
        torch RNG)."""
        positions = self.interesting_positions(generator)
        interesting = np.take_along_axis(self.top_items, positions, axis=1)
        return interesting, self.uninteresting_items(generator)


def _first_occurrences(x: np.ndarray) -> np.ndarray:
    """True where an entry of a row of ``x`` (R, S) is its value's first in that row."""
    order = np.argsort(x, axis=1, kind="stable")          # equal values keep their order
    ordered = np.take_along_axis(x, order, axis=1)
    first = np.ones(x.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    out = np.empty_like(first)
    np.put_along_axis(out, order, first, axis=1)
    return out


class RRD(Distiller):
    """RRD as a distiller for :func:`htdviz.train.fit` (see the module docstring).

    Parameters
    ----------
    teacher_user_repr : array or tensor of shape (n_users, d_t)
    teacher_item_repr : array or tensor of shape (n_items, d_t)
        The teacher's score of (u, i) is their dot product (BPR-MF, LightGCN) unless
        ``teacher_scorer`` is given.
    student_dim : int
        Unused: RRD reads the student's scores, not its representations.
    generator : torch.Generator, optional
        Draws each epoch's items (default: the global torch RNG).
    teacher_scorer : callable, optional
        ``teacher_scorer(users)`` -> the teacher's scores of every item (a NeuMF teacher's
        scorer; :func:`htdviz.experiment.make_distiller` passes it). Used once, in
        :meth:`prepare`, for the teacher's lists.
    n_interesting, n_uninteresting, n_top, rank_temperature, rank_sampling
        K, L, the length of the teacher's list, T, and whether the interesting items
        are sampled by rank (see :class:`RankSampler`).
    """

    options = (
        Option("n_interesting", 40, "RRD: interesting items per user (K)", low=1),
        Option("n_uninteresting", 40, "RRD: uninteresting items per user (L)", low=1),
        Option("n_top", 500, "RRD: length of the teacher's list per user", low=1),
        Option("rank_temperature", 10.0, "RRD: T of the rank weights exp(-rank / T)",
               low=1e-6),
        Option("rank_sampling", True, "RRD: the teacher's top K items as the interesting "
               "ones, not sampled by rank (as its authors later recommend)",
               flag="--no-rank-sampling", invert=True, label="-topk"),
    )
    display_name = "RRD"
    needs_scores = True

    def __init__(self, teacher_user_repr, teacher_item_repr, student_dim: int,
                 generator: torch.Generator | None = None, n_interesting: int = 40,
                 n_uninteresting: int = 40, n_top: int = 500, rank_temperature: float = 10.0,
                 rank_sampling: bool = True, teacher_scorer=None):
        super().__init__()
        if not 1 <= n_interesting <= n_top:
            raise ValueError(f"n_interesting must be in [1, n_top={n_top}], got {n_interesting}")
        self.register_teacher(teacher_user_repr, teacher_item_repr)
        self.settings = dict(n_interesting=n_interesting, n_uninteresting=n_uninteresting,
                             temperature=rank_temperature, rank_sampling=rank_sampling)
        self.n_top, self.teacher_scorer = n_top, teacher_scorer
        self.generator = generator
        self.sampler: RankSampler | None = None
        self.interesting = self.uninteresting = None

    def prepare(self, dataset) -> None:
        """The teacher's lists of ``dataset``'s users, computed once."""
        top = teacher_top_items(self.teacher_users.cpu(), self.teacher_items.cpu(),
                                dataset.train, self.n_top, scorer=self.teacher_scorer)
        self.teacher_scorer = None                   # used once; holds the teacher's model
        self.sampler = RankSampler(top, dataset.train, **self.settings)

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        """This epoch's interesting and uninteresting items of every user."""
        if self.sampler is None:
            raise RuntimeError("RRD.prepare(dataset) must be called before training")
        device = self.teacher_users.device
        interesting, uninteresting = self.sampler.sample(self.generator)
        self.interesting = torch.from_numpy(interesting).to(device)
        self.uninteresting = torch.from_numpy(uninteresting).to(device)

    def forward(self, users, items, student_users, student_items, scores=None):
        """L_RRD over the batch's unique ``users``; ``scores(users, items)`` gives the
        student's scores of items (U, M) for users (U,)."""
        if scores is None:
            raise ValueError("RRD needs the student's scores: fit passes them (scores=...)")
        return {"loss": relaxed_ranking_loss(scores(users, self.interesting[users]),
                                             scores(users, self.uninteresting[users]))}


register_method("rrd", RRD, built_in=True)
