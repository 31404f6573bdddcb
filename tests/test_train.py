"""htdviz.train: the BPR loss, learning, determinism, early stopping, configuration checks."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from htdviz import train
from htdviz.distill import annealed_temperature
from htdviz.models import BPRMF, LightGCN
from htdviz.train import TrainConfig, bpr_loss, fit


def make_model(kind: str, ds, dim: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    if kind == "bpr":
        return BPRMF(ds.n_users, ds.n_items, dim, generator=generator)
    return LightGCN(ds, dim, n_layers=2, generator=generator)


def quick_config(**overrides) -> TrainConfig:
    settings = dict(epochs=2, batch_size=256, lr=0.02, eval_every=1, ks=(10, 50),
                    monitor="recall@10")
    settings.update(overrides)
    return TrainConfig(**settings)


def test_bpr_loss_hand_computed():
    users = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    # differences of scores: 2 - 0 = 2 and 2 - 1 = 1
    expected = math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))
    assert bpr_loss(users, pos, neg).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", ["bpr", "lightgcn"])
def test_fit_improves_validation_recall(small_synthetic, kind):
    model = make_model(kind, small_synthetic)
    result = fit(model, small_synthetic, quick_config(epochs=4, eval_every=4), device="cpu",
                 progress=False)
    history = result.history
    assert history["epoch"].tolist() == [0, 4]
    start, end = history["valid_recall@10"].tolist()
    assert end > start + 0.05                  # ~0.035 at random init, ~0.2 after 4 epochs
    assert end == pytest.approx(
        train.evaluate_both(model, small_synthetic, (10,))["valid_recall@10"])
    assert result.seconds > 0 and result.best_epoch == 4


def test_history_layout(small_synthetic):
    result = fit(make_model("bpr", small_synthetic), small_synthetic,
                 quick_config(epochs=5, eval_every=2), device="cpu", progress=False)
    history = result.history
    assert isinstance(history, pd.DataFrame)
    assert history["epoch"].tolist() == [0, 2, 4, 5]           # and always the last epoch
    for split in ("valid", "test"):
        for metric in ("recall@10", "ndcg@10", "recall@50", "ndcg@50"):
            assert f"{split}_{metric}" in history
    assert np.isnan(history["bpr_loss"].iloc[0])               # nothing trained at epoch 0
    assert (history["bpr_loss"].iloc[1:] > 0).all()
    assert history["seconds"].is_monotonic_increasing and history["seconds"].iloc[0] == 0
    assert history["seconds"].iloc[-1] == pytest.approx(result.seconds)


@pytest.mark.parametrize("kind", ["bpr", "lightgcn"])
def test_same_random_state_same_run(small_synthetic, kind):
    def run(random_state, init_seed=0):
        model = make_model(kind, small_synthetic, dim=8, seed=init_seed)
        result = fit(model, small_synthetic, quick_config(random_state=random_state),
                     device="cpu", progress=False)
        return result.history.drop(columns="seconds"), model.representations()[0]

    history_a, users_a = run(0)
    history_b, users_b = run(0)
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    assert torch.equal(users_a, users_b)
    history_c, users_c = run(1)                 # other batches and negatives
    assert not np.array_equal(history_a["bpr_loss"].iloc[1:], history_c["bpr_loss"].iloc[1:])
    assert not torch.equal(users_a, users_c)


class ScriptedValidation:
    """Replaces evaluate_both: returns a scripted valid recall@10 and remembers the model's
    user embedding at every evaluation."""

    def __init__(self, valid_scores):
        self.valid_scores = list(valid_scores)
        self.user_emb_at = []

    def __call__(self, model, dataset, ks):
        score = self.valid_scores[len(self.user_emb_at)]
        self.user_emb_at.append(model.user_emb.detach().clone())
        return {f"{split}_{m}@{k}": score for split in ("valid", "test")
                for m in ("recall", "ndcg") for k in ks}


@pytest.mark.parametrize("scores, epochs, patience, evaluated, kept", [
    # best at epoch 1; epochs 2 and 3 are not better: stop after epoch 3, restore epoch 1
    ([0.1, 0.5, 0.4, 0.3, 0.9, 0.9], 6, 2, [0, 1, 2, 3], 1),
    # the epochs run out before the patience: the best (epoch 2) is restored all the same
    ([0.1, 0.2, 0.6, 0.5], 3, 5, [0, 1, 2, 3], 2),
    # without early stopping the last weights stay, though epoch 1 was best
    ([0.1, 0.6, 0.2], 2, None, [0, 1, 2], 2),
], ids=["stops", "epochs-run-out", "off"])
def test_early_stopping_keeps_the_best_or_the_last_weights(small_synthetic, monkeypatch, scores,
                                                           epochs, patience, evaluated, kept):
    script = ScriptedValidation(scores)
    monkeypatch.setattr(train, "evaluate_both", script)
    model = make_model("bpr", small_synthetic)
    result = fit(model, small_synthetic,
                 quick_config(epochs=epochs, early_stopping_patience=patience), device="cpu",
                 progress=False)
    assert result.history["epoch"].tolist() == evaluated
    assert result.best_epoch == int(np.argmax(scores[:len(evaluated)]))
    assert torch.equal(model.user_emb.detach(), script.user_emb_at[kept])
    if kept != evaluated[-1]:
        assert not torch.equal(model.user_emb.detach(), script.user_emb_at[-1])


@pytest.mark.parametrize("kwargs, name", [
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(eval_every=0), "eval_every"),
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(weight_decay=float("inf")), "weight_decay"),
    (dict(distill_weight=-1.0), "distill_weight"),
    (dict(early_stopping_patience=0), "early_stopping_patience"),
    (dict(ks=(0, 50)), "ks"),
    (dict(monitor="recall@7"), "monitor"),
    (dict(monitor="precision@50"), "monitor"),
    (dict(monitor="recall"), "monitor"),
])
def test_train_config_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_train_config_defaults_are_the_reference_recipe():
    config = TrainConfig()
    assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == \
        (100, 1024, 1e-3, 1e-3)
    assert config.distill_weight == 1e-3 and config.monitor == "recall@50"
    assert config.to_dict()["ks"] == [10, 20, 50]


def test_compiled_loops_leave_torch_on_the_threads_it_was_given():
    """numba's OpenMP pool, launched by the first compiled loop of a run (the negative
    sampler's), set the process's OpenMP thread count to numba's, so a run or study worker
    given one torch thread computed on every core. In a fresh process with two numba
    threads: torch keeps its one thread, numba's loops get one too."""
    import os
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1)\n"
            "import numpy as np\n"
            "from htdviz.data import NegativeSampler\n"
            "from htdviz._kernels import use_torch_threads\n"
            "import scipy.sparse as sp\n"
            "NegativeSampler(sp.csr_matrix(np.eye(50, dtype=np.float32)))"
            ".sample(np.arange(50), np.random.default_rng(0))\n"
            "import numba\n"
            "print(use_torch_threads(), torch.get_num_threads(), numba.threading_layer())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NUMBA_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    *threads, layer = done.stdout.split()
    if layer != "omp":
        pytest.skip(f"numba's threading layer is {layer}: its pool shares no thread count "
                    f"with torch")
    assert threads == ["1", "1"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc to see the stop")
def test_training_seconds_leave_out_a_stop():
    """A run stopped with kill -TSTP (Ctrl-Z) and resumed with kill -CONT records the
    seconds it trained, not the stop's. The run stops itself at its second epoch; the
    stop lasts 2 s, the training far less. The old clock counted the stop."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import os, signal, time\n"
            "signal.signal(signal.SIGTSTP, signal.SIG_DFL)   # even where pytest's is ignored\n"
            "from htdviz import data, train\n"
            "from htdviz.models import BPRMF\n"
            "from htdviz.distill.base import Distiller\n"
            "ds = data.synthetic(n_users=60, n_items=90, n_groups=3, dim=4, seed=0)\n"
            "class StopAtEpoch1(Distiller):\n"
            "    def forward(self, users, items, u, i):\n"
            "        return {'loss': u.sum() * 0}\n"
            "    def start_epoch(self, epoch, n_epochs):\n"
            "        if epoch == 1:\n"
            "            os.kill(os.getpid(), signal.SIGTSTP)\n"
            "tic = time.perf_counter()\n"
            "result = train.fit(BPRMF(ds.n_users, ds.n_items, 4), ds, train.TrainConfig(epochs=2, "
            "eval_every=2), distiller=StopAtEpoch1(), device='cpu', progress=False)\n"
            "print(result.history['seconds'].iloc[-1], time.perf_counter() - tic)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 120
    while child.poll() is None and stat.read_text().split(") ")[1][0] != "T":
        assert time.monotonic() < deadline, "the run did not stop itself"
        time.sleep(0.05)
    assert child.poll() is None, child.communicate()[1]
    time.sleep(2.0)
    os.kill(child.pid, signal.SIGCONT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    seconds, wall = map(float, out.split())
    assert wall > 2.0                                    # the stop happened inside fit
    assert seconds < wall - 1.9


def test_fused_adam_makes_the_same_update():
    # train._adam picks the fused kernel for speed; it must be the same algorithm.
    torch.manual_seed(0)
    start = torch.randn(50, 8)
    grads = [torch.randn(50, 8) for _ in range(5)]
    results = []
    for fused in (True, False):
        param = nn.Parameter(start.clone())
        if fused:
            optimizer = train._adam([param], TrainConfig())
            assert optimizer.defaults["fused"]
        else:
            optimizer = torch.optim.Adam([param], lr=1e-3, weight_decay=1e-3)
        assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["weight_decay"] == 1e-3
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        results.append(param.detach())
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-7)
    assert not torch.equal(results[0], start)


class RecordingDistiller(nn.Module):
    """A distiller that checks what fit hands it and returns a trainable loss."""

    def __init__(self, model):
        super().__init__()
        self.model = [model]                    # a list, so it is not a sub-module
        self.offset = nn.Parameter(torch.zeros(()))
        self.epochs_started, self.calls = [], 0

    def start_epoch(self, epoch, n_epochs):
        self.epochs_started.append((epoch, n_epochs))

    def forward(self, users, items, user_repr, item_repr):
        self.calls += 1
        assert torch.equal(users, torch.unique(users)) and torch.equal(items, torch.unique(items))
        all_users, all_items = self.model[0]()
        assert torch.equal(user_repr, all_users[users]) and user_repr.requires_grad
        assert torch.equal(item_repr, all_items[items])
        extra = (self.offset - 1.0) ** 2
        return {"loss": extra + user_repr.pow(2).sum() * 0, "offset_term": extra}


def test_fit_with_distiller(small_synthetic):
    model = make_model("bpr", small_synthetic)
    distiller = RecordingDistiller(model)
    config = quick_config(epochs=2, batch_size=512, eval_every=2)
    fit(model, small_synthetic, config, distiller=distiller, device="cpu", progress=False)
    n_batches = math.ceil(small_synthetic.n_train / 512)
    assert distiller.calls == 2 * n_batches
    assert distiller.epochs_started == [(0, 2), (1, 2)]
    assert distiller.offset.item() > 0.05      # the distiller's parameters are trained too
    model = make_model("bpr", small_synthetic)
    history = fit(model, small_synthetic, config, distiller=RecordingDistiller(model),
                  device="cpu", progress=False).history
    assert {"distill_loss", "offset_term"} <= set(history.columns)


def test_fit_records_group_usage_for_distillers_with_groups(small_synthetic):
    from htdviz import distill, groups

    rng = np.random.default_rng(0)
    teacher = (rng.normal(size=(small_synthetic.n_users, 16)),
               rng.normal(size=(small_synthetic.n_items, 16)))
    config = TrainConfig(epochs=2, eval_every=1, batch_size=512)
    model = BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4,
                  generator=torch.Generator().manual_seed(0))
    htd = distill.HTD(*teacher, 4, n_groups=6)
    history = fit(model, small_synthetic, config, distiller=htd, device="cpu",
                  progress=False).history
    assert len(history) == 3
    last = history.iloc[-1]
    for kind in ("user", "item"):
        usage = groups.group_usage(htd.hard_groups(kind).numpy(), 6)
        assert last[f"{kind}_groups_used"] == usage["used"]
        assert last[f"{kind}_group_entropy"] == pytest.approx(usage["entropy"])
    assert history["item_groups_used"].between(1, 6).all()
    model = BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4,
                  generator=torch.Generator().manual_seed(0))
    history = fit(model, small_synthetic, config, distiller=distill.FTD(*teacher),
                  device="cpu", progress=False).history
    assert not any(c.endswith("groups_used") for c in history.columns)


# --------------------------------------------------------------------------------------
# updates="sparse": only the batch's rows
# --------------------------------------------------------------------------------------

def _one_step(ds, updates: str, batch_size: int = 64):
    """The model after exactly one training step of each kind, from the same start."""
    # unit-scale rows: gradients far above Adam's eps (see below)
    model = BPRMF(ds.n_users, ds.n_items, 8, init_std=1.0,
                  generator=torch.Generator().manual_seed(0))
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_train = ds.train.nnz
    fit(model, ds, TrainConfig(epochs=1, batch_size=n_train, eval_every=1, lr=0.01,
                               weight_decay=0.05, updates=updates), device="cpu",
        progress=False)
    return start, model


def _few_items_used(n_users: int = 20, n_items: int = 400, seed: int = 0):
    """A data set whose users interact with 3 of the first 40 items each: one step over
    all training pairs leaves most of the 400 item rows untouched."""
    import scipy.sparse as sp

    from htdviz.data import Dataset

    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_users), 3)
    cols = np.concatenate([rng.choice(40, 3, replace=False) for _ in range(n_users)])
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                          shape=(n_users, n_items))
    held_out = np.full(n_users, n_items - 1)
    return Dataset("few", train, held_out, held_out, np.arange(n_users), np.arange(n_items))


def test_sparse_step_equals_the_recipe_on_touched_rows_and_leaves_the_rest():
    """One step over a batch that touches some rows: the touched rows move as in the dense
    recipe (Adam, gradient of BPR + weight decay); untouched rows do not move (the recipe
    decays them too)."""
    ds = _few_items_used()
    start, dense = _one_step(ds, "dense")
    _, sparse = _one_step(ds, "sparse")
    # the single batch is every training pair: each user, and the items that occur as a
    # positive or as the sampled negative (same rng, same draw in both runs)
    users, items = ds.train_pairs()
    touched_items = np.zeros(ds.n_items, dtype=bool)
    touched_items[items] = True
    moved = (sparse.item_emb.detach() != start["item_emb"]).any(1).numpy()
    assert moved[touched_items].all()
    assert torch.allclose(sparse.user_emb.detach(), dense.user_emb.detach(), rtol=1e-6,
                          atol=1e-7)
    assert torch.allclose(sparse.item_emb.detach()[moved], dense.item_emb.detach()[moved],
                          rtol=1e-6, atol=1e-7)
    untouched = ~moved
    assert untouched.any(), "every item was touched: the test needs untouched rows"
    assert torch.equal(sparse.item_emb.detach()[untouched], start["item_emb"][untouched])
    assert not torch.equal(dense.item_emb.detach()[untouched], start["item_emb"][untouched])


def test_row_adam_steps_like_adam_on_the_touched_rows():
    """Two steps of RowAdam on the rows a batch touches equal two steps of torch's Adam
    (coupled weight decay) on a copy holding only those rows; other rows never change."""
    model = BPRMF(5, 7, 3, init_std=1.0, generator=torch.Generator().manual_seed(0))
    start = model.item_emb.detach().clone()
    rows = train.RowAdam(model.embedding_tables(), lr=0.05, weight_decay=0.1)
    users, pos, neg = torch.tensor([0, 2, 2]), torch.tensor([1, 3, 1]), torch.tensor([4, 4, 6])
    copy = torch.nn.Parameter(start[[1, 3, 4, 6]].clone())
    adam = torch.optim.Adam([copy], lr=0.05, weight_decay=0.1)
    index = {1: 0, 3: 1, 4: 2, 6: 3}
    for _ in range(2):
        loss, batch_users, batch_items, user_rows, item_rows = \
            train._sparse_bpr(rows, users, pos, neg)
        assert batch_items.tolist() == [1, 3, 4, 6]
        assert loss.item() == pytest.approx(bpr_loss(model.user_emb[users], model.item_emb[pos],
                                                     model.item_emb[neg]).item(), rel=1e-6)
        # the same loss as a function of the copy (users held fixed)
        mine = bpr_loss(user_rows.detach()[[0, 1, 1]],
                        copy[[index[i] for i in pos.tolist()]],
                        copy[[index[i] for i in neg.tolist()]])
        adam.zero_grad()
        mine.backward()
        adam.step()
        loss.backward()
        rows.step()
    assert torch.allclose(model.item_emb.detach()[[1, 3, 4, 6]], copy.detach(), rtol=1e-6,
                          atol=1e-7)
    untouched = [0, 2, 5]
    assert torch.equal(model.item_emb.detach()[untouched], start[untouched])


def test_row_adam_compiled_update_equals_torch_ops():
    """The CPU's one-pass row update (numba) and the torch ops used on a GPU move the same
    rows and moments the same way, over several steps with repeated rows; other rows stay."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(50, 7, generator=gen)
    states = [(table.clone(), torch.zeros(50, 7), torch.zeros(50, 7)) for _ in range(2)]
    for step in range(1, 4):
        ids = torch.tensor([3, 8, 9, 41]) + step          # overlapping rows across steps
        grad = torch.randn(4, 7, generator=gen)
        hyper = dict(lr=0.01 / (1 - 0.9 ** step), beta1=0.9, beta2=0.999, weight_decay=0.1,
                     eps=1e-8, sqrt_correction2=math.sqrt(1 - 0.999 ** step))
        train._row_adam_cpu(*states[0], ids, grad, **hyper)
        train._row_adam_torch(*states[1], ids, grad, **hyper)
    for mine, theirs in zip(*states):
        assert torch.allclose(mine, theirs, rtol=1e-5, atol=1e-7)
    assert torch.equal(states[0][0][:4], table[:4])
    assert not torch.equal(states[0][0][4], table[4])


def test_compiled_sparse_bpr_equals_autograd():
    """The teacher's sparse step on the CPU (loss and row gradients in one compiled pass)
    gives the loss and gradients of the autograd path, with users and items repeated in the
    batch and scores large enough that exp would overflow if computed naively."""
    model = BPRMF(6, 9, 5, init_std=1.0, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.user_emb[0] *= 60                         # |score| of its triples > 100
    users = torch.tensor([0, 2, 2, 5, 0, 1])
    pos = torch.tensor([1, 3, 1, 8, 4, 1])
    neg = torch.tensor([4, 4, 6, 0, 7, 2])
    autograd = train.RowAdam(model.embedding_tables(), lr=0.1)
    loss, batch_users, batch_items, user_rows, item_rows = \
        train._sparse_bpr(autograd, users, pos, neg)
    loss.backward()
    compiled = train.RowAdam(model.embedding_tables(), lr=0.1)
    compiled_loss = train._sparse_bpr_cpu(compiled, users, pos, neg)
    (_, user_ids, _, user_grad), (_, item_ids, _, item_grad) = compiled._touched
    assert math.isfinite(compiled_loss.item()) and compiled_loss.item() > 100
    assert compiled_loss.item() == pytest.approx(loss.item(), rel=1e-5)
    # the compiled path lists rows in order of first appearance, autograd's sorted
    assert user_ids.tolist() == [0, 2, 5, 1] and item_ids.tolist() == [1, 3, 8, 4, 6, 0, 7, 2]
    assert (compiled.scratch(0) == -1).all() and (compiled.scratch(1) == -1).all()
    user_order, item_order = torch.argsort(user_ids), torch.argsort(item_ids)
    assert torch.equal(user_ids[user_order], batch_users)
    assert torch.equal(item_ids[item_order], batch_items)
    assert torch.allclose(user_grad[user_order], user_rows.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(item_grad[item_order], item_rows.grad, rtol=1e-5, atol=1e-6)


def test_sparse_updates_train_and_refuse_lightgcn(small_synthetic):
    ds = small_synthetic
    model = make_model("bpr", ds)
    result = fit(model, ds, quick_config(updates="sparse", epochs=3), device="cpu",
                 progress=False)
    assert result.history["test_recall@50"].iloc[-1] > result.history["test_recall@50"].iloc[0]
    with pytest.raises(ValueError, match="updates='sparse' needs a model whose"):
        fit(make_model("lightgcn", ds), ds, quick_config(updates="sparse"), device="cpu",
            progress=False)
    with pytest.raises(ValueError, match="updates must be one of"):
        TrainConfig(updates="lazy")


def test_sparse_updates_in_the_run_configurations():
    from htdviz.config import StudentConfig, TeacherConfig

    teacher = TeacherConfig(updates="sparse")
    assert "-teacher-sparse-" in teacher.folder_name()
    assert "updates" not in TeacherConfig().to_dict()     # old folders keep their names
    assert "-htd-sparse-" in StudentConfig(updates="sparse").folder_name()
    with pytest.raises(ValueError, match="updates 'sparse' needs model 'bpr'"):
        TeacherConfig(model="lightgcn", updates="sparse")
    with pytest.raises(ValueError, match="updates must be one of"):
        StudentConfig(updates="lazy")


# --------------------------------------------------------------------------------------
# Schedules and checkpoints
# --------------------------------------------------------------------------------------

class _Recorder(torch.nn.Module):
    """A distiller that adds nothing and records the temperature HTD would use."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def start_epoch(self, epoch, n_epochs):
        self.calls.append(annealed_temperature(epoch, n_epochs))

    def forward(self, users, items, user_repr, item_repr):
        return self.w * 0.0


@pytest.mark.parametrize("schedule", ["default", "reference"])
def test_schedules(schedule, small_synthetic):
    """default: E epochs, labels 0..E, tau(0), ..., tau(E-1); reference (the authors'
    loop): E + 1 epochs, labels -1..E (label e after e + 1 epochs), tau = 1 twice, then
    tau(1), ..., tau(E-1)."""
    epochs = 4
    recorder = _Recorder()
    model = BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4,
                  generator=torch.Generator().manual_seed(0))
    result = fit(model, small_synthetic, TrainConfig(epochs=epochs, eval_every=2,
                                                     schedule=schedule),
                 distiller=recorder, device="cpu", progress=False)
    history = result.history
    tau = [annealed_temperature(e, epochs) for e in range(epochs)]
    assert (history["schedule"] == schedule).all()
    if schedule == "default":
        assert recorder.calls == tau
        assert list(history["epoch"]) == [0, 2, 4]
        assert list(history["epochs_trained"]) == [0, 2, 4]
    else:
        assert recorder.calls == [1.0] + tau
        assert recorder.calls[-1] == pytest.approx(1e-10 ** ((epochs - 1) / epochs))
        assert list(history["epoch"]) == [-1, 0, 2, 4]
        assert list(history["epochs_trained"]) == [0, 1, 3, 5]


def test_a_checkpoint_of_another_run_is_refused(tmp_path, small_synthetic, monkeypatch):
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    checkpoint = tmp_path / "state.pt"
    model = BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4)
    fit(model, small_synthetic, TrainConfig(epochs=1), progress=False, checkpoint=checkpoint)
    with pytest.raises(ValueError, match=r"state\.pt was written by another run"):
        fit(model, small_synthetic, TrainConfig(epochs=1, lr=0.01), progress=False,
            checkpoint=checkpoint)
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"state\.pt: cannot be read"):
        fit(model, small_synthetic, TrainConfig(epochs=1), progress=False,
            checkpoint=checkpoint)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_gpu_checkpoint_on_a_cpu_only_machine_is_one_clear_error(tmp_path, small_synthetic,
                                                                   monkeypatch):
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    checkpoint = tmp_path / "state.pt"
    model = BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4)
    fit(model, small_synthetic, TrainConfig(epochs=1), progress=False, checkpoint=checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    # what a distiller's Gumbel noise stream on a GPU leaves in a checkpoint
    state["generators"] = {"assignment.noise.cuda:0": torch.zeros(16, dtype=torch.uint8)}
    torch.save(state, checkpoint)
    with pytest.raises(ValueError, match=r"state\.pt was written on cuda:0, which this "
                                         r"machine lacks"):
        fit(model, small_synthetic, TrainConfig(epochs=1), progress=False,
            checkpoint=checkpoint)
