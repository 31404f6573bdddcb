"""Tag-retrieval probe: how much item semantics a frozen representation keeps (docs/method.md §9).

The paper freezes the item representations of a teacher or student and trains a linear
and a small non-linear probe to predict each CiteULike item's tags, reporting Recall@10
(BPR: teacher .312; student .242 / .270, HTD .264 / .291, linear / non-linear). The
paper does not publish the probe's details; htdviz's choices, all exposed as parameters:

- tags: the ``n_tags`` most frequent tags (default 1,000: CiteULike-t's items carry 51,896
  distinct tags, only 8,175 of them on 5 or more items; the 1,000th most frequent is on 40
  items, and 24,980 of the 25,181 items carry one of the 1,000); items without any kept
  tag are left out;
- inputs: the representations standardised with the training split's mean and standard
  deviation (BPR embeddings are tiny numbers of uneven scale);
- probes: ``"linear"``, one linear layer (dim -> n_tags); ``"mlp"``, dim -> ``hidden``
  (256) -> n_tags with a ReLU;
- loss: softmax cross-entropy against the item's tags as a uniform target distribution
  (a listwise loss, suited to ranking the tags); Adam, ``epochs`` passes over the
  training items in mini-batches, weight decay on the weights only;
- metric: Recall@k = |top-k predicted tags ∩ true tags| / |true tags|, averaged over the
  test items; ``n_repeats`` seeded random splits (``test_size`` held out), reported as
  mean and standard deviation.

For scale (one split, CiteULike-t, BPR trained 30 epochs, not the paper's runs): teacher
d = 200 .44 linear / .43 MLP, student d = 20 .31 / .37 with the defaults, about 1 to 4 s
per probe on one CPU thread. 5 or 20 epochs instead of 10 moved each by at most .02;
more epochs overfit the teacher's probes and still help the student's a little.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ._threads import torch_threads
from ._validation import check_int, check_matrix, check_tags

PROBES = ("linear", "mlp")


def tag_retrieval(item_repr, item_tags, kind: str = "linear", n_repeats: int = 3, k: int = 10,
                  random_state=0, n_tags: int | None = 1000, test_size: float = 0.2,
                  hidden: int = 256, epochs: int = 10, batch_size: int = 1024,
                  lr: float = 1e-2, weight_decay: float = 1e-5,
                  standardize: bool = True, n_threads: int | None = 1) -> dict:
    """Recall@k of a probe that predicts item tags from frozen item representations.

    Parameters
    ----------
    item_repr : array or tensor of shape (n_items, dim)
    item_tags : sparse or dense matrix of shape (n_items, n_all_tags)
        Nonzero where an item carries a tag (``Dataset.item_tags``).
    kind : {"linear", "mlp"}, default "linear"
    n_repeats : int, default 3
        Random train / test splits; each trains a fresh probe.
    k : int, default 10
    random_state : int, default 0
        Seeds the splits, the probe's initialisation and the batch order of every repeat
        (repeat r uses seed ``random_state + r``).
    n_tags : int or None, default 1000
        Keep the most frequent tags (ties: lower tag id first); None keeps all.
    test_size : float, default 0.2
        Share of the items with a kept tag held out per repeat.
    hidden : int, default 256
        Hidden units of the "mlp" probe.
    epochs : int, default 10
    batch_size : int, default 1024
    lr : float, default 1e-2
    weight_decay : float, default 1e-5
    standardize : bool, default True
    n_threads : int or None, default 1
        PyTorch threads while the probes train (the previous setting is restored). The
        matrices are small: on a busy 2-core CPU one thread was 3 to 10 times faster
        than two. None leaves the setting alone.

    Returns
    -------
    dict
        ``mean`` and ``std`` (population standard deviation over repeats) of Recall@k,
        ``values`` (list, one per repeat), ``n_items`` (items with a kept tag) and
        ``n_tags`` (tags kept).
    """
    x = check_matrix(item_repr, "item_repr").astype(np.float32)
    tags = check_tags(item_tags, x.shape[0])
    if kind not in PROBES:
        raise ValueError(f"kind must be one of {PROBES}, got {kind!r}")
    n_repeats = check_int(n_repeats, "n_repeats")
    k = check_int(k, "k")
    hidden = check_int(hidden, "hidden")
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    for name, value in (("lr", lr), ("weight_decay", weight_decay)):
        if not np.isfinite(value) or value < 0 or (name == "lr" and value == 0):
            raise ValueError(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}"
                             f", got {value!r}")
    if n_threads is not None:
        n_threads = check_int(n_threads, "n_threads")
    if not isinstance(random_state, (int, np.integer)):
        raise ValueError(f"random_state must be an int, got {random_state!r}")

    x, y = _select(x, tags, n_tags)
    n_test = int(round(test_size * x.shape[0]))
    if not 1 <= n_test < x.shape[0]:
        raise ValueError(f"test_size={test_size} leaves {n_test} of {x.shape[0]} items for "
                         f"testing; need at least one on each side")
    if k > y.shape[1]:
        raise ValueError(f"k must be at most the number of kept tags ({y.shape[1]}), got {k}")
    values = []
    for repeat in range(n_repeats):
        seed = int(random_state) + repeat
        order = np.random.default_rng(seed).permutation(x.shape[0])
        test, train = order[:n_test], order[n_test:]
        with torch_threads(n_threads):
            values.append(_fit_and_score(x, y, train, test, kind, k, seed, hidden, epochs,
                                         batch_size, lr, weight_decay, standardize))
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values,
            "n_items": int(x.shape[0]), "n_tags": int(y.shape[1])}


def _select(x: np.ndarray, tags: sp.csr_matrix, n_tags: int | None):
    """Keep the n_tags most frequent tags and the items that carry one of them."""
    frequency = np.asarray(tags.sum(0)).ravel()
    if n_tags is not None:
        n_tags = check_int(n_tags, "n_tags")
        kept_tags = np.sort(np.argsort(-frequency, kind="stable")[:n_tags])
    else:
        kept_tags = np.arange(tags.shape[1])
    kept_tags = kept_tags[frequency[kept_tags] > 0]
    y = tags[:, kept_tags].tocsr()
    items = np.flatnonzero(np.diff(y.indptr) > 0)
    if kept_tags.size == 0 or items.size == 0:
        raise ValueError("no item carries any of the kept tags")
    return x[items], y[items]


def _probe(kind: str, dim: int, n_tags: int, hidden: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(dim, n_tags)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, n_tags))


def _dense_rows(y: sp.csr_matrix, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(y[rows].toarray().astype(np.float32))


def _fit_and_score(x, y, train, test, kind, k, seed, hidden, epochs, batch_size, lr,
                   weight_decay, standardize) -> float:
    generator = torch.Generator().manual_seed(seed)
    x_train, x_test = torch.from_numpy(x[train]), torch.from_numpy(x[test])
    if standardize:
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = _dense_rows(y, train)                                  # (n_train, n_tags)
    target = y_train / y_train.sum(1, keepdim=True)                  # uniform over its tags
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _probe(kind, x.shape[1], y.shape[1], hidden)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    optimizer = torch.optim.Adam([{"params": decay, "weight_decay": weight_decay},
                                  {"params": rest, "weight_decay": 0.0}], lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(train), generator=generator).split(batch_size):
            log_p = torch.log_softmax(model(x_train[batch]), dim=1)
            loss = -(target[batch] * log_p).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        top = model(x_test).topk(k, dim=1).indices.numpy()           # (n_test, k)
    return _recall_at_k(top, y[test])


def _recall_at_k(top: np.ndarray, truth: sp.csr_matrix) -> float:
    """Mean over rows of |top[i] ∩ truth[i]| / |truth[i]| (every row has a true tag)."""
    truth = truth.tocsr()
    n_cols = truth.shape[1]
    rows = np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr))
    keys = np.sort(rows * n_cols + truth.indices)                  # every true (item, tag)
    asked = np.arange(top.shape[0])[:, None] * n_cols + top         # (n, k)
    place = np.minimum(np.searchsorted(keys, asked), keys.size - 1)
    hits = (keys[place] == asked).sum(1)
    return float(np.mean(hits / np.diff(truth.indptr)))
