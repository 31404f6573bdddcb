"""Training: the BPR recipe of docs/method.md §2, for teachers and (with a distiller) students.

One epoch visits every training interaction once in a seeded random order, in batches of
``batch_size`` triples (user, positive item, one fresh uniform negative). The loss is the
BPR loss summed over the batch, plus ``distill_weight`` times the distiller's loss when a
distiller is given. Adam with its own ``weight_decay`` updates every trainable parameter
(the model's and the distiller's).

With ``updates="sparse"`` (opt-in; BPR-MF only) a step touches only the rows of the batch's
users and items: they are gathered, get gradients, and are updated by :class:`RowAdam`,
Adam with the recipe's weight decay on those rows alone (docs/method.md §2.1). The default,
``"dense"``, is the recipe: Adam with weight decay over every row at every step.

A distiller follows the contract of :class:`htdviz.distill.Distiller`: it is called as
``distiller(users, items, user_repr, item_repr)`` and returns a dict with a ``"loss"`` entry
and further scalar terms to log, where ``users`` are the batch's unique users, ``items`` its
unique positive and negative items, and ``*_repr`` the student's final representations of
those entities; its hooks are called before each epoch (``start_epoch``: HTD anneals its
temperature there) and at each evaluation (``group_usage``, for the history). A plain
``torch.nn.Module`` with such a forward (returning a dict or a scalar loss) is accepted too
(:func:`htdviz.distill.base.as_distiller`).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._io import write_atomically
from ._threads import flush_denormals
from .data import Dataset, NegativeSampler
from .distill.base import as_distiller
from .evaluate import DEFAULT_KS, full_ranking
from .models.base import bpr_loss
from .options import DISTILL_WEIGHT, EPOCHS, EVAL_EVERY, LR, SCHEDULES, UPDATES, WEIGHT_DECAY

#: A checkpoint is saved after the first epoch that ends at least this many seconds after
#: the last one (writing a teacher's whole state costs a fraction of an epoch).
CHECKPOINT_SECONDS = 60.0


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainConfig:
    """The reference recipe (docs/method.md §2) as defaults."""

    epochs: int = EPOCHS
    batch_size: int = 1024
    lr: float = LR
    weight_decay: float = WEIGHT_DECAY
    eval_every: int = EVAL_EVERY
    ks: tuple = DEFAULT_KS
    distill_weight: float = DISTILL_WEIGHT
    early_stopping_patience: int | None = None   # in evaluations without a better valid metric
    monitor: str = "recall@50"
    random_state: int = 0
    #: "default": ``epochs`` epochs; history epoch e = after e epochs (0 = untrained); the
    #: temperature of a distiller anneals from its first epoch. "reference": the authors'
    #: loop (docs/method.md §6.3): ``epochs + 1`` epochs, history epoch e = after e + 1
    #: epochs (-1 = untrained), and a distiller's temperature is held at its start for the
    #: first two epochs, ending at tau(E - 1).
    schedule: str = "default"
    #: "dense": the recipe, Adam over every parameter at every step; "sparse": only the
    #: batch's rows (BPR-MF), row-wise Adam with L2 on those rows (docs/method.md §2.1).
    updates: str = "dense"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "distill_weight"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be None or >= 1, "
                             f"got {self.early_stopping_patience}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.updates not in UPDATES:
            raise ValueError(f"updates must be one of {UPDATES}, got {self.updates!r}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive integers, got {self.ks}")
        metric, _, k = self.monitor.partition("@")
        if metric not in ("recall", "ndcg") or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"monitor must be 'recall@k' or 'ndcg@k' with k in ks={self.ks}, "
                             f"got {self.monitor!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ks"] = list(self.ks)
        return d


@dataclass
class FitResult:
    """What :func:`fit` returns: the history and the best-validation epoch."""

    history: pd.DataFrame
    best_epoch: int | None
    seconds: float


def evaluate_both(model, dataset: Dataset, ks=DEFAULT_KS) -> dict[str, float]:
    """Validation and test metrics of a model, keys like ``valid_recall@50``."""
    users, items = model.representations()
    scorer = model.scorer(users, items)          # the model's score (dot products, NeuMF's)
    out = {}
    for split in ("valid", "test"):
        for key, value in full_ranking(users, items, dataset, split, ks,
                                       scorer=scorer).items():
            out[f"{split}_{key}"] = value
    return out


def fit(model, dataset: Dataset, config: TrainConfig | None = None, distiller=None,
        device: str | torch.device | None = None, progress: bool = True,
        checkpoint: str | Path | None = None) -> FitResult:
    """Train ``model`` (a :class:`~htdviz.models.Recommender`) on ``dataset`` in place.

    Parameters
    ----------
    model : Recommender
    dataset : Dataset
    config : TrainConfig, optional
        Defaults to the reference recipe.
    distiller : torch.nn.Module, optional
        A distillation loss (see the module docstring); trained jointly with the model.
    device : str or torch.device, optional
        Default :func:`default_device`.
    progress : bool, str or dict, default True
        Show a tqdm progress bar; a string names it (e.g. "htd d20 s0"); a dict gives its
        tqdm options (``desc``, ``position``, ``leave``: a study's runs side by side).
    checkpoint : str or Path, optional
        A file that holds the whole training state (model, distiller, optimiser moments,
        random generators, history; written atomically, read back with
        ``torch.load(weights_only=True)``), saved after an epoch at most every
        :data:`CHECKPOINT_SECONDS`. If it exists when ``fit`` starts, training resumes
        after its epoch, and ends exactly as an uninterrupted run would (same device and
        threads). It is left in place; the caller deletes it once the results
        are saved. A checkpoint of another configuration or model is an error.

    Returns
    -------
    FitResult
        ``history`` has one row per evaluated epoch (epoch 0 = before training; with
        ``config.schedule == "reference"``, the authors' labels: epoch e = after e + 1
        epochs, -1 = before training), its ``epochs_trained``, the ``schedule``, the
        mean losses of the epoch, valid_* and test_* metrics and seconds of training (the
        epochs' own, less any stop by Ctrl-Z or ``kill -TSTP``: :func:`training_clock`); for a
        distiller with groups (DE, HTD) also ``{user,item}_groups_used`` and
        ``{user,item}_group_entropy`` (bits) of its hard assignment at that epoch.
        With early stopping, the model keeps the weights of its best-validation epoch.
    """
    # Subnormal floats (tiny gradients of a trained teacher's topology, HTD's Gumbel-softmax
    # weights as its temperature falls) are slow on many CPUs and carry nothing here, so
    # they are flushed to zero in every thread while fit runs (htdviz._threads).
    with flush_denormals(), training_clock() as clock:
        return _fit(model, dataset, config, distiller, device, progress, checkpoint, clock)


class _Clock:
    """Seconds of :func:`time.perf_counter` less the seconds the process was stopped."""

    def __init__(self):
        self.stopped = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.stopped


#: The clock of the outermost :func:`training_clock` running in this process, if any.
_ACTIVE: _Clock | None = None


@contextlib.contextmanager
def training_clock():
    """A clock (a callable giving seconds) that leaves out the time the process is stopped
    with Ctrl-Z or ``kill -TSTP <pid>`` (until ``fg`` / ``kill -CONT <pid>``), so a run
    paused to free the machine records its training seconds, not the pause's.

    The stop takes effect at the next Python instruction of the main thread (after the
    compiled call running then, e.g. a batch's backward), and is a SIGSTOP, so it also
    stops a run started in the background without a terminal (``nohup``), where the
    default stop of SIGTSTP is dropped. It takes SIGTSTP over only where the signal still
    has its default action and this is the main thread (a notebook's kernel, a study's
    worker); elsewhere, and for SIGSTOP, which cannot be caught, the clock counts the
    stopped time too. Nested, it gives the outer clock (a benchmark timing ``fit``).
    """
    global _ACTIVE
    if _ACTIVE is not None:
        yield _ACTIVE
        return
    clock = _Clock()
    tstp = getattr(signal, "SIGTSTP", None)                   # none on Windows
    if (tstp is None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(tstp) is not signal.SIG_DFL):
        yield clock
        return

    def stop(signum, frame):
        tic = time.perf_counter()
        os.kill(os.getpid(), signal.SIGSTOP)          # resumes here on SIGCONT
        clock.stopped += time.perf_counter() - tic

    previous = signal.signal(tstp, stop)
    _ACTIVE = clock
    try:
        yield clock
    finally:
        _ACTIVE = None
        signal.signal(tstp, previous)


def _fit(model, dataset, config, distiller, device, progress, checkpoint,
         clock) -> FitResult:
    """The epoch loop of :func:`fit`.

    Long because the loop reads top to bottom as one epoch runs: anneal, shuffle, the
    batches, evaluate, keep the best, checkpoint, stop early; the steps share the loop's
    state (history rows, best snapshot, patience, seconds), which a split would pass around.
    """
    config = config or TrainConfig()
    distiller = as_distiller(distiller)
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    if config.updates == "sparse" and not hasattr(model, "embedding_tables"):
        raise ValueError(f"updates='sparse' needs a model whose representations are its "
                         f"embedding rows (BPR-MF); {type(model).__name__}'s are not "
                         f"(LightGCN propagates over the whole graph at every step)")
    if distiller is not None:
        if config.updates == "sparse" and distiller.needs_scores:
            raise ValueError(f"updates='sparse' cannot train {type(distiller).__name__}: it "
                             f"reads the scores of items outside the batch; use 'dense'")
        distiller.to(device)
        distiller.prepare(dataset)
    optimizers, row_adam = _optimizers(model, distiller, config)

    rng = np.random.default_rng(config.random_state)
    torch.manual_seed(config.random_state)   # for a distiller built without a generator
    sampler = NegativeSampler(dataset.train)
    train_users, train_items = dataset.train_pairs()
    n = train_users.size
    n_batches = math.ceil(n / config.batch_size)

    # The reference loop trains epochs 0..E and logs "epoch e" after e + 1 of them; it
    # anneals after each epoch, so tau stays at its start for two epochs (docs/method.md §6.3).
    reference = config.schedule == "reference"
    n_epochs = config.epochs + 1 if reference else config.epochs
    label_offset = 1 if reference else 0
    saver = _Checkpoint(checkpoint, config, model, distiller, optimizers, row_adam, rng) \
        if checkpoint is not None else None
    if saver is not None and saver.exists():
        done, rows, best, since_best, seconds = saver.load()
    else:
        rows = [{"epoch": -label_offset, "epochs_trained": 0,
                 **evaluate_both(model, dataset, config.ks), **_group_usage(distiller),
                 "seconds": 0.0}]
        best = (rows[0][f"valid_{config.monitor}"], -label_offset, _snapshot(model))
        done, since_best, seconds = 0, 0, 0.0
    bar_options = progress if isinstance(progress, dict) else \
        {"desc": progress if isinstance(progress, str) else "epochs"}
    bar = tqdm(range(done + 1, n_epochs + 1), disable=not progress, initial=done,
               total=n_epochs, **bar_options)
    stopped = config.early_stopping_patience is not None and \
        since_best >= config.early_stopping_patience
    for trained in ([] if stopped else bar):
        epoch = trained - label_offset                     # the epoch's label in the history
        tic = clock()                           # a distiller's per-epoch work counts too
        if distiller is not None:
            distiller.start_epoch(max(trained - 1 - label_offset, 0), config.epochs)
        order = rng.permutation(n)
        users_np = train_users[order]
        negatives_np = sampler.sample(users_np, rng)
        users_all = torch.from_numpy(users_np).to(device)
        pos_all = torch.from_numpy(train_items[order]).to(device)
        neg_all = torch.from_numpy(negatives_np).to(device)
        sums: dict[str, float] = {}
        model.train()
        for b in range(n_batches):
            sl = slice(b * config.batch_size, (b + 1) * config.batch_size)
            terms = _step(model, users_all[sl], pos_all[sl], neg_all[sl], distiller,
                          optimizers, row_adam, config.distill_weight)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
        sums = {k: float(v) / n_batches for k, v in sums.items()}
        seconds += clock() - tic
        bar.set_postfix(loss=f"{sums['bpr_loss']:.2f}")
        if epoch % config.eval_every == 0 or trained == n_epochs:
            model.eval()
            row = {"epoch": epoch, "epochs_trained": trained, **sums,
                   **evaluate_both(model, dataset, config.ks), **_group_usage(distiller),
                   "seconds": seconds}
            rows.append(row)
            score = row[f"valid_{config.monitor}"]
            if score > best[0]:
                best, since_best = (score, epoch, _snapshot(model)), 0
            else:
                since_best += 1
        if saver is not None and saver.due():
            saver.save(trained, rows, best, since_best, seconds)
        if config.early_stopping_patience is not None and \
                since_best >= config.early_stopping_patience:
            break
    bar.close()
    if config.early_stopping_patience is not None:
        model.load_state_dict(best[2])
    model.eval()
    history = pd.DataFrame(rows)
    history["schedule"] = config.schedule
    return FitResult(history=history, best_epoch=best[1], seconds=seconds)


def _optimizers(model, distiller, config: TrainConfig):
    """The optimisers of one training run: Adam over the trainable parameters (the
    model's unless updates are sparse, and the distiller's), and with sparse updates a
    :class:`RowAdam` over the model's embedding tables (also the last of the list)."""
    params = [] if config.updates == "sparse" else list(model.parameters())
    if distiller is not None:
        params += [p for p in distiller.parameters() if p.requires_grad]
    optimizers = [_adam(params, config)] if params else []
    row_adam = RowAdam(model.embedding_tables(), config.lr, config.weight_decay) \
        if config.updates == "sparse" else None
    if row_adam is not None:
        optimizers.append(row_adam)
    return optimizers, row_adam


def _step(model, users, pos, neg, distiller, optimizers, row_adam,
          distill_weight: float) -> dict[str, torch.Tensor]:
    """One training step on a batch of (user, positive, negative) triples; returns the
    loss terms (detached): ``bpr_loss`` and, with a distiller, ``distill_loss`` and its
    other terms."""
    if row_adam is not None and distiller is None and users.is_cpu:
        # a teacher's sparse step on the CPU (its only optimiser is row_adam): loss and
        # gradient in one compiled pass, no autograd
        loss = _sparse_bpr_cpu(row_adam, users, pos, neg)
        row_adam.step()
        return {"bpr_loss": loss}
    if row_adam is not None:
        loss, batch_users, batch_items, batch_user_repr, batch_item_repr = \
            _sparse_bpr(row_adam, users, pos, neg)
    else:
        user_repr, item_repr = model()
        # one gather for positives and negatives: one full-size gradient in the backward
        pos_repr, neg_repr = item_repr.index_select(0, torch.cat([pos, neg])).split(len(pos))
        loss = model.training_loss(user_repr.index_select(0, users), pos_repr, neg_repr)
    terms = {"bpr_loss": loss.detach()}
    if distiller is not None:
        if row_adam is None:
            batch_users = torch.unique(users)
            batch_items = torch.unique(torch.cat([pos, neg]))
            batch_user_repr = user_repr.index_select(0, batch_users)
            batch_item_repr = item_repr.index_select(0, batch_items)
        extra = {}
        if distiller.needs_scores:        # RRD: items beyond the batch (dense steps only)
            extra["scores"] = lambda ids, item_ids: model.item_scores(
                user_repr.index_select(0, ids), item_repr[item_ids])
        out = distiller(batch_users, batch_items, batch_user_repr, batch_item_repr, **extra)
        out = out if isinstance(out, dict) else {"loss": out}
        loss = loss + distill_weight * out["loss"]
        terms.update({f"distill_{k}" if k == "loss" else k: v.detach()
                      for k, v in out.items()})
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    return terms


def _sparse_bpr(rows: "RowAdam", users, pos, neg):
    """The BPR loss of a batch from the rows it touches.

    Returns the loss (BPR summed over the batch), the batch's unique users and items and
    their representations (for a distiller), gathered through ``rows`` so that its next
    :meth:`RowAdam.step` updates exactly them.
    """
    batch_users, user_of = torch.unique(users, return_inverse=True)
    batch_items, item_of = torch.unique(torch.cat([pos, neg]), return_inverse=True)
    user_rows = rows.gather(0, batch_users)                                   # (U, d)
    item_rows = rows.gather(1, batch_items)                                   # (I, d)
    pos_repr, neg_repr = item_rows.index_select(0, item_of).split(len(pos))
    loss = bpr_loss(user_rows.index_select(0, user_of), pos_repr, neg_repr)
    return loss, batch_users, batch_items, user_rows, item_rows


def _sparse_bpr_cpu(rows: "RowAdam", users, pos, neg) -> torch.Tensor:
    """:func:`_sparse_bpr` and its backward pass, compiled (``htdviz._kernels``): returns
    the loss and hands the gradients of the touched rows to ``rows`` for its next
    :meth:`RowAdam.step`. The batch's users and items are in order of first appearance."""
    from ._kernels import bpr_grad, unique_inverse, use_torch_threads   # numba: on first use

    threads = use_torch_threads()
    user_table, item_table = (table.detach().numpy() for table in rows.tables)
    user_ids, user_of = unique_inverse(users.numpy(), rows.scratch(0))
    item_ids, item_of = unique_inverse(torch.cat([pos, neg]).numpy(), rows.scratch(1))
    loss, user_grad, item_grad = bpr_grad(
        user_table, item_table, user_ids, item_ids, user_of, item_of[:len(pos)],
        item_of[len(pos):], threads)
    rows.add_grad(0, torch.from_numpy(user_ids), torch.from_numpy(user_grad))
    rows.add_grad(1, torch.from_numpy(item_ids), torch.from_numpy(item_grad))
    return torch.tensor(loss, dtype=rows.tables[0].dtype)


class RowAdam:
    """Adam on the rows of embedding tables that a step touched ("lazy" Adam).

    :meth:`gather` hands out a table's rows as a leaf tensor (or :meth:`add_grad` takes
    their gradient computed without autograd); after the backward pass, :meth:`step`
    applies to those rows exactly what :class:`torch.optim.Adam` with ``weight_decay``
    (coupled L2, the recipe) applies to a parameter: gradient plus ``weight_decay * row``,
    moments, bias correction by the number of steps taken. Rows a step does not touch keep
    their values and moments (the dense recipe would decay them and move them along their
    momentum): the difference from the recipe, docs/method.md §2.1.
    A step costs in proportion to the touched rows, not to the tables.

    Parameters
    ----------
    tables : sequence of torch.nn.Parameter of shape (n_rows, dim)
    lr, weight_decay : float
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    """

    def __init__(self, tables, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        self.tables = list(tables)
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.moments = [(torch.zeros_like(t, requires_grad=False),
                         torch.zeros_like(t, requires_grad=False)) for t in self.tables]
        self.steps = 0
        self._scratch: dict[int, np.ndarray] = {}
        # (table, ids, rows gathered for autograd or None, gradient or None)
        self._touched: list[tuple[int, torch.Tensor, torch.Tensor | None,
                                  torch.Tensor | None]] = []

    def gather(self, table: int, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (unique) of table ``table`` as a leaf tensor that collects their
        gradient; shape (len(ids), dim)."""
        rows = self.tables[table].detach().index_select(0, ids).requires_grad_(True)
        self._touched.append((table, ids, rows, None))
        return rows

    def add_grad(self, table: int, ids: torch.Tensor, grad: torch.Tensor) -> None:
        """The gradient (len(ids), dim) of rows ``ids`` (unique) of table ``table``,
        computed without autograd, for the next :meth:`step`."""
        self._touched.append((table, ids, None, grad))

    def scratch(self, table: int) -> np.ndarray:
        """-1 for each row of table ``table``: the scratch space of
        ``htdviz._kernels.unique_inverse`` (it leaves it as it found it)."""
        if table not in self._scratch:
            self._scratch[table] = np.full(len(self.tables[table]), -1, dtype=np.int64)
        return self._scratch[table]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to clear: each :meth:`gather` makes fresh leaves, and :meth:`step`
        forgets them."""

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        hyper = dict(lr=self.lr / (1 - beta1 ** self.steps), beta1=beta1, beta2=beta2,
                     weight_decay=self.weight_decay, eps=self.eps,
                     sqrt_correction2=math.sqrt(1 - beta2 ** self.steps))
        for table, ids, rows, grad in self._touched:
            grad = rows.grad if grad is None else grad
            if grad is None:
                continue
            first, second = self.moments[table]
            update = _row_adam_cpu if grad.is_cpu else _row_adam_torch
            update(self.tables[table].detach(), first, second, ids, grad, **hyper)
        self._touched = []


def _row_adam_torch(table, first, second, ids, grad, lr, beta1, beta2, weight_decay, eps,
                    sqrt_correction2) -> None:
    """Adam on rows ``ids`` of ``table`` and of its moments, in place, with torch's ops
    (``lr`` already divided by the first moment's bias correction)."""
    rows = table.index_select(0, ids)
    grad = grad.add(rows, alpha=weight_decay) if weight_decay else grad
    exp_avg = first.index_select(0, ids).lerp_(grad, 1 - beta1)
    exp_avg_sq = second.index_select(0, ids).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = exp_avg_sq.sqrt().div_(sqrt_correction2).add_(eps)
    first.index_put_((ids,), exp_avg)
    second.index_put_((ids,), exp_avg_sq)
    table.index_put_((ids,), rows.addcdiv_(exp_avg, denom, value=-lr))


def _row_adam_cpu(table, first, second, ids, grad, **hyper) -> None:
    """:func:`_row_adam_torch` in one pass over each touched row (``htdviz._kernels``):
    on the CPU the update is bound by memory, and torch's ops read and write every touched
    row of the table and of both moments several times."""
    from ._kernels import row_adam, use_torch_threads   # numba: on first use

    use_torch_threads()
    row_adam(table.numpy(), first.numpy(), second.numpy(), ids.numpy(),
             grad.contiguous().numpy(), **hyper)


class _Checkpoint:
    """The whole state of a :func:`fit` in one file, saved after an epoch (see
    :meth:`due`) and loaded to resume (torch.save, read with ``weights_only=True``:
    tensors and plain values only)."""

    FORMAT = 1

    def __init__(self, path, config, model, distiller, optimizers, row_adam, rng):
        self.path = Path(path)
        self.config, self.model, self.distiller = config, model, distiller
        self.optimizers = [o for o in optimizers if o is not row_adam]
        self.row_adam, self.rng = row_adam, rng
        self.last_saved = time.perf_counter()
        self.identity = {"config": config.to_dict(), "model": type(model).__name__,
                         "distiller": type(distiller).__name__ if distiller is not None
                         else None}

    def exists(self) -> bool:
        return self.path.exists()

    def due(self) -> bool:
        """Whether :data:`CHECKPOINT_SECONDS` have passed since the last save (or start)."""
        return time.perf_counter() - self.last_saved >= CHECKPOINT_SECONDS

    def save(self, trained, rows, best, since_best, seconds) -> None:
        state = {
            "format": self.FORMAT, **self.identity, "trained": trained,
            "model_state": self.model.state_dict(),
            "distiller_state": self._distiller_state(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "row_adam": None if self.row_adam is None else {
                "steps": self.row_adam.steps, "moments": [list(m) for m in
                                                          self.row_adam.moments]},
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "generators": {name: g.get_state() for name, g in self._generators()},
            "rows": [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
                     for row in rows],
            "best": list(best), "since_best": since_best, "seconds": seconds,
        }
        write_atomically(self.path, lambda f: torch.save(state, f))
        self.last_saved = time.perf_counter()

    def load(self):
        """Restore every object given to the constructor; returns (epochs trained, history
        rows, best, evaluations since the best, seconds of training)."""
        try:
            state = torch.load(self.path, weights_only=True, map_location="cpu")
        except Exception as error:
            raise ValueError(f"checkpoint {self.path}: cannot be read ({error}); delete it "
                             f"to train from the start") from error
        devices = {key.rsplit(".noise.", 1)[1] for key in state.get("generators", {})
                   if ".noise." in key}
        missing = sorted(d for d in devices if d.startswith("cuda")
                         and not torch.cuda.is_available())
        if missing:
            raise ValueError(f"checkpoint {self.path} was written on {missing[0]}, which this "
                             f"machine lacks (its random streams live there); resume it on "
                             f"a machine with a GPU, or delete it to train from the start")
        mine = {k: state.get(k) for k in self.identity}
        if state.get("format") != self.FORMAT or mine != self.identity:
            raise ValueError(f"checkpoint {self.path} was written by another run "
                             f"({mine['model']}, {mine['distiller']}, "
                             f"{mine['config']}); delete it to train from the start")
        self.model.load_state_dict(state["model_state"])
        if self.distiller is not None:
            missing, unexpected = self.distiller.load_state_dict(state["distiller_state"],
                                                                 strict=False)
            # checkpoints written before register_teacher left out a method's own teacher
            # buffers (by name); they are inputs, rebuilt from the teacher run
            missing = [k for k in missing
                       if k.rsplit(".", 1)[-1] not in ("teacher_users", "teacher_items")]
            if unexpected or missing:
                raise ValueError(f"checkpoint {self.path}: the distiller's state does not "
                                 f"fit (missing {missing}, unexpected {unexpected})")
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        if self.row_adam is not None:
            self.row_adam.steps = state["row_adam"]["steps"]
            for mine_, saved in zip(self.row_adam.moments, state["row_adam"]["moments"]):
                for target, source in zip(mine_, saved):
                    target.copy_(source)
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        generators = dict(self._generators(state["generators"]))
        for name, saved in state["generators"].items():
            generators[name].set_state(saved)
        best = state["best"]
        return state["trained"], state["rows"], (best[0], best[1], best[2]), \
            state["since_best"], state["seconds"]

    def _distiller_state(self) -> dict:
        """The distiller's state (its teacher representations are not part of it:
        :meth:`htdviz.distill.Distiller.register_teacher`)."""
        return {} if self.distiller is None else self.distiller.state_dict()

    def _generators(self, wanted=()):
        """(name, generator) of the distiller's random streams: each module's
        ``generator`` and its per-device noise generators; those named in ``wanted`` that
        a fresh distiller has not made yet are made."""
        if self.distiller is None:
            return []
        out = []
        for name, module in self.distiller.named_modules():
            if isinstance(getattr(module, "generator", None), torch.Generator):
                out.append((f"{name}.generator", module.generator))
            noise = getattr(module, "_noise_generators", None)
            if isinstance(noise, dict):
                for key in wanted:
                    prefix = f"{name}.noise."
                    if key.startswith(prefix):
                        device = torch.device(key[len(prefix):])
                        noise.setdefault(device, torch.Generator(device))
                out += [(f"{name}.noise.{device}", g) for device, g in noise.items()]
        return out


def _group_usage(distiller) -> dict[str, float]:
    """Groups in use and the entropy of their sizes, as the distiller reports them
    (:meth:`htdviz.distill.Distiller.group_usage`; empty for a method without groups)."""
    return {} if distiller is None else distiller.group_usage()


def _adam(params, config: TrainConfig) -> torch.optim.Adam:
    """Adam with its own weight decay; the fused kernel (same update, about 2.5x faster on
    CPU, see docs/benchmarks.md) wherever this PyTorch has it for the parameters' device."""
    try:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _snapshot(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
