"""Every fast distillation loss against a dense, literal transcription of docs/method.md
§4, §5 and §6.

The transcriptions below build N x N matrices and one-hot masks, loop over the K experts
one nn.Linear pair at a time, and follow the text step by step. Both sides get the same
inputs and the same Gumbel noise; values and gradients must agree to 1e-5 (relative).
"""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from htdviz import distill
from htdviz.distill import DE, FTD, HTD, FitNet, annealed_temperature

torch.set_default_dtype(torch.float32)
RTOL = 1e-5

# ----------------------------------------------------------------------------- literal side


def cos_matrix(a, b):
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def literal_ftd(t, s):
    return ((cos_matrix(t, t) - cos_matrix(s, s)) ** 2).sum()


def literal_experts(experts, k):
    """Expert k of a stacked Experts module as the reference's
    nn.Sequential(Linear, ReLU, Linear)."""
    def f(x):
        return F.relu(x @ experts.w1[k] + experts.b1[k]) @ experts.w2[k] + experts.b2[k]
    return f


def literal_ga(t, s, selection, experts, tau, noise):
    alpha = torch.softmax(selection(t), dim=1) + 1e-10
    z = torch.softmax((torch.log(alpha) + noise) / tau, dim=1)
    t_hat = torch.zeros_like(t)
    for k in range(experts.n_experts):
        t_hat = t_hat + z[:, k:k + 1] * literal_experts(experts, k)(s)
    return ((t - t_hat) ** 2).sum()


def literal_htd(htd, users, items, su, si, noise):
    K = htd.n_groups
    tu, ti = htd.assignment.teacher_users[users], htd.assignment.teacher_items[items]
    t, s = torch.cat([tu, ti]), torch.cat([su, si])
    with torch.no_grad():
        zu = torch.softmax(htd.selection["user"](tu), 1).argmax(1)
        zi = torch.softmax(htd.selection["item"](ti), 1).argmax(1) + K
    z = torch.cat([zu, zi])
    Z = F.one_hot(z, 2 * K).float()                                     # (N, 2K)
    present = Z.sum(0) > 0
    counts = Z.sum(0)[present]
    proto_t = (Z.T @ t)[present] / counts[:, None]
    s_for_proto = s.detach() if htd.detach_student_prototypes else s
    proto_s = (Z.T @ s_for_proto)[present] / counts[:, None]
    # entity level: same-group N x N mask
    mask = Z @ Z.T
    t_sim, s_sim = cos_matrix(t, t), cos_matrix(s, s)
    keep = mask > 0
    if htd.positive_pairs_only:
        keep = keep & (t_sim > 0)
    entity = ((t_sim - s_sim)[keep] ** 2).sum()
    if htd.group_design == "P,e":
        group = ((cos_matrix(proto_t, t) - cos_matrix(proto_s, s)) ** 2).sum()
    else:
        group = ((cos_matrix(proto_t, proto_t) - cos_matrix(proto_s, proto_s)) ** 2).sum()
    ga = sum(literal_ga(tt, ss, htd.selection[kind], htd.assignment.experts[kind],
                        htd.temperature, noise[kind])
             for kind, tt, ss in (("user", tu, su), ("item", ti, si)))
    return htd.alpha * (entity + group) + (1 - htd.alpha) * ga, entity, group, ga


# ----------------------------------------------------------------------------- fixtures


def make_problem(seed, n_users=40, n_items=70, d_t=12, d_s=4, batch_users=25, batch_items=45):
    g = torch.Generator().manual_seed(seed)
    teacher_users = torch.randn(n_users, d_t, generator=g)
    teacher_items = torch.randn(n_items, d_t, generator=g)
    users = torch.randperm(n_users, generator=g)[:batch_users]
    items = torch.randperm(n_items, generator=g)[:batch_items]
    su = torch.randn(batch_users, d_s, generator=g).requires_grad_()
    si = torch.randn(batch_items, d_s, generator=g).requires_grad_()
    return teacher_users, teacher_items, users, items, su, si


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


def assert_close(a, b, what):
    if a is None or b is None:
        assert a is None and b is None or (a if b is None else b).abs().max() == 0, what
        return
    a, b = a.detach(), b.detach()
    scale = max(float(b.abs().max()), 1e-12)
    err = float((a - b).abs().max())
    assert err <= RTOL * scale + 1e-7, f"{what}: max abs diff {err:.3g} vs scale {scale:.3g}"


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ftd_matches_literal(seed):
    tu, ti, users, items, su, si = make_problem(seed)
    ftd = FTD(tu, ti)
    fast = ftd(users, items, su, si)["loss"]
    slow = literal_ftd(torch.cat([tu[users], ti[items]]), torch.cat([su, si]))
    assert_close(fast, slow, "FTD value")
    for a, b, name in zip(grads(fast, [su, si]), grads(slow, [su, si]), ["su", "si"]):
        assert_close(a, b, f"FTD grad {name}")


def test_ftd_zero_for_identical_topology():
    tu, ti, users, items, _, _ = make_problem(0, d_s=12)
    # the student is the teacher scaled per row: cosines are identical, loss ~ 0
    su, si = 3 * tu[users], 0.5 * ti[items]
    assert float(FTD(tu, ti)(users, items, su, si)["loss"]) < 1e-6 * users.numel() ** 2


def htd_parameters(htd):
    return list(htd.parameters())


# temperatures: 1.0 (every z dense), 0.05 (weights set to 0, gumbel_softmax_weights),
# 1e-3 (mixed), 1e-9 (every z one-hot: fast path)
CASES = list(itertools.product(["P,e", "P,P"], [True, False], [True, False],
                               [1.0, 0.05, 1e-3, 1e-9]))


@pytest.mark.parametrize("design,positive_only,detach,tau", CASES)
def test_htd_matches_literal(design, positive_only, detach, tau):
    tu, ti, users, items, su, si = make_problem(7, d_t=10)
    torch.manual_seed(3)
    htd = HTD(tu, ti, student_dim=4, n_groups=3, group_design=design,
              positive_pairs_only=positive_only, detach_student_prototypes=detach)
    htd.assignment.temperature = tau
    noise = {"user": -torch.empty(len(users), 3).exponential_().log(),
             "item": -torch.empty(len(items), 3).exponential_().log()}
    out = htd(users, items, su, si, noise=noise)
    slow, entity, group, ga = literal_htd(htd, users, items, su, si, noise)
    assert_close(out["loss"], slow, "HTD value")
    assert_close(out["entity"], entity, "entity term")
    assert_close(out["group"], group, "group term")
    assert_close(out["assignment"], ga, "assignment term")
    wrt = [su, si] + htd_parameters(htd)
    for i, (a, b) in enumerate(zip(grads(out["loss"], wrt), grads(slow, wrt))):
        assert_close(a, b, f"HTD grad #{i}")


@pytest.mark.parametrize("method,tile", [("blocks", None), ("blocks", 7), ("blocks", 16),
                                         ("dense", None)])
def test_within_group_error_for_any_group_sizes(method, tile, monkeypatch):
    """Balanced and very uneven group sizes (one size class or several): literal value and
    gradient, for the CPU's block path (its large blocks in tiles of 7 or 16, uneven, as
    well as whole) and the GPU's dense path."""
    from htdviz.distill import htd as htd_module
    from htdviz.distill.htd import within_group_error
    if tile is not None:
        monkeypatch.setattr(htd_module, "TILE", tile)
    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(60, 8, generator=g), torch.randn(60, 3, generator=g)
    balanced = torch.arange(60) % 6
    skewed = torch.where(torch.arange(60) < 50, 0, torch.arange(60) % 5 + 1)
    for labels in (balanced, skewed):
        same = labels[:, None] == labels[None, :]
        for positive in (True, False):
            keep = same & (cos_matrix(t, t) > 0) if positive else same
            s.requires_grad_(True)
            want = ((cos_matrix(t, t) - cos_matrix(s, s))[keep] ** 2).sum()
            got = within_group_error(t, s, labels, positive, method)
            assert_close(got, want, "within-group")
            assert_close(grads(got, [s])[0], grads(want, [s])[0], "within-group gradient")
    with pytest.raises(ValueError, match="method"):
        within_group_error(t, s, balanced, method="sparse")


def test_within_group_error_tiles_a_block_larger_than_a_tile():
    """One group of 1,100 entities (three tiles of the real TILE): the literal value and
    gradient over all its pairs."""
    from htdviz.distill.htd import TILE, within_group_error
    g = torch.Generator().manual_seed(1)
    t, s = torch.randn(1100, 12, generator=g), torch.randn(1100, 4, generator=g)
    assert len(t) > 2 * TILE
    s.requires_grad_(True)
    t_sim = cos_matrix(t, t)
    want = ((t_sim - cos_matrix(s, s))[t_sim > 0] ** 2).sum()
    got = within_group_error(t, s, torch.zeros(1100, dtype=torch.long), True, "blocks")
    assert_close(got, want, "one large group")
    assert_close(grads(got, [s])[0], grads(want, [s])[0], "one large group's gradient")


def test_quirks_change_the_loss():
    """The switches are not no-ops: each changes the value or the gradient."""
    tu, ti, users, items, su, si = make_problem(4)
    noise = {"user": torch.zeros(len(users), 5), "item": torch.zeros(len(items), 5)}

    def run(**kw):
        torch.manual_seed(0)
        htd = HTD(tu, ti, 4, n_groups=5, **kw)
        out = htd(users, items, su, si, noise=noise)
        return out, grads(out["loss"], [su, si])

    base, base_grad = run()
    all_pairs, _ = run(positive_pairs_only=False)
    assert float(all_pairs["entity"]) != pytest.approx(float(base["entity"]))
    _, live_grad = run(detach_student_prototypes=False)
    assert not torch.allclose(live_grad[1], base_grad[1])
    # Group(P,P) with detached student prototypes is a constant: no gradient from it ...
    from htdviz.distill.htd import group_level_error
    t = torch.cat([tu[users], ti[items]])
    s = torch.cat([su, si])
    labels = torch.arange(len(t)) % 5
    assert not group_level_error(t, s, labels, "P,P", detach_student_prototypes=True).requires_grad
    # ... while with live prototypes it teaches
    live = group_level_error(t, s, labels, "P,P", detach_student_prototypes=False)
    assert float(grads(live, [su])[0].abs().sum()) > 0


def test_reference_defaults():
    """The defaults are the reference runs' hyper-parameters and the authors' quirks."""
    import inspect
    params = inspect.signature(HTD).parameters
    assert {k: params[k].default for k in ("n_groups", "alpha", "group_design",
            "positive_pairs_only", "detach_student_prototypes", "temperature_start",
            "temperature_end")} == {"n_groups": 30, "alpha": 0.5, "group_design": "P,e",
                                    "positive_pairs_only": True,
                                    "detach_student_prototypes": True,
                                    "temperature_start": 1.0, "temperature_end": 1e-10}
    from htdviz.train import TrainConfig
    assert TrainConfig().distill_weight == 1e-3


# 0.05: many Gumbel-softmax weights lie between 0 and their row's second weight times
# 2^-24 / K, where the fast path sets them to exactly 0 (gumbel_softmax_weights) and the
# literal one keeps them
@pytest.mark.parametrize("tau", [1.0, 0.05, 1e-9])
def test_de_matches_literal(tau):
    from htdviz.distill.experts import negligible_weights
    tu, ti, users, items, su, si = make_problem(5)
    torch.manual_seed(1)
    de = DE(tu, ti, student_dim=4, n_groups=4)
    de.temperature = tau
    noise = {"user": -torch.empty(len(users), 4).exponential_().log(),
             "item": -torch.empty(len(items), 4).exponential_().log()}
    with torch.no_grad():
        z = torch.softmax((torch.log(torch.softmax(de.selection["item"](ti[items]), 1) + 1e-10)
                           + noise["item"]) / tau, dim=1)
        dropped = int(((z > 0) & (z < negligible_weights(z))).sum())
    assert (dropped > 0) == (tau == 0.05), dropped
    fast = de.loss(users, items, su, si, noise)
    slow = sum(literal_ga(de.teacher(kind, ids), s, de.selection[kind], de.experts[kind], tau,
                          noise[kind])
               for kind, ids, s in (("user", users, su), ("item", items, si)))
    assert_close(fast, slow, "DE value")
    wrt = [su, si] + list(de.parameters())
    for i, (a, b) in enumerate(zip(grads(fast, wrt), grads(slow, wrt))):
        assert_close(a, b, f"DE grad #{i}")


@pytest.mark.parametrize("tau", [1.0, 0.3, 0.1, 0.05, 0.02, 0.01, 1e-3])
def test_weights_set_to_zero_change_each_rows_gradient_by_rounding_only(tau):
    """Per row, the gradient that reaches the logits through gumbel_softmax_weights is off
    the exact (float64) one by no more than the literal float32 softmax's own rounding,
    however small the row's gradient (a nearly one-hot row keeps the tiny weights its
    gradient is made of)."""
    from htdviz.distill.experts import gumbel_softmax_weights

    g = torch.Generator().manual_seed(int(-math.log10(tau)) + 1)
    logits = (torch.randn(400, 30, generator=g) * 3).double().requires_grad_(True)
    upstream = torch.randn(400, 30, generator=g).double()

    def logit_grad(weights):
        return torch.autograd.grad((weights(logits) * upstream).sum(), logits)[0]

    exact = logit_grad(lambda x: torch.softmax(x / tau, 1))
    literal = logit_grad(lambda x: torch.softmax(x.float() / tau, 1).double())
    fast = logit_grad(lambda x: gumbel_softmax_weights(x.float(), tau).double())
    with torch.no_grad():
        z = torch.softmax(logits.float() / tau, 1)
    dropped = int(((z > 0) & (gumbel_softmax_weights(logits.float().detach(), tau) == 0)).sum())
    if 0.01 <= tau <= 0.3:
        assert dropped > 0                      # the case this test is about
    rounding = (literal - exact).norm(dim=1)
    error = (fast - exact).norm(dim=1)
    assert (error <= 2 * rounding + 1e-6 * exact.norm(dim=1) + 1e-30).all()
    # the reviewer's row: three tiny weights make up the whole gradient; none is dropped
    row = torch.tensor([[0.0, -1.2, -1.3, -1.25]], requires_grad=True)
    assert (gumbel_softmax_weights(row, 0.05) > 0).all()


def test_fitnet_matches_literal():
    tu, ti, users, items, su, si = make_problem(6)
    fit = FitNet(tu, ti, 4)
    fast = fit(users, items, su, si)["loss"]
    t, s = torch.cat([tu[users], ti[items]]), torch.cat([su, si])
    slow = sum(((t[e] - fit.projector(s[e:e + 1])[0]) ** 2).sum() for e in range(len(t)))
    assert_close(fast, slow, "FitNet value")


def test_temperature_schedule():
    assert annealed_temperature(0, 100) == 1.0
    assert annealed_temperature(50, 100) == pytest.approx(1e-5)
    assert annealed_temperature(100, 100) == pytest.approx(1e-10)
    assert annealed_temperature(300, 100) == 1e-10          # floored
    htd = HTD(torch.randn(5, 4), torch.randn(6, 4), 2, n_groups=2)
    htd.start_epoch(10, 100)
    assert htd.temperature == pytest.approx(0.1)


def test_hard_groups_are_selection_argmax():
    tu, ti = torch.randn(30, 6), torch.randn(50, 6)
    htd = HTD(tu, ti, 2, n_groups=4)
    want = (ti @ htd.selection["item"].weight.T + htd.selection["item"].bias).argmax(1)
    assert torch.equal(htd.hard_groups("item"), want)
    with pytest.raises(ValueError, match="kind"):
        htd.hard_groups("tag")


@pytest.mark.parametrize("kwargs,match", [
    ({"group_design": "P,Q"}, "group_design"),
    ({"alpha": 1.5}, "alpha"),
    ({"n_groups": 0}, "n_groups"),
])
def test_htd_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HTD(torch.randn(5, 4), torch.randn(6, 4), 2, **kwargs)


@pytest.mark.parametrize("case", ["one-hot balanced", "one-hot uneven", "two per row",
                                  "two per row uneven", "dense"])
def test_experts_paths_match_literal(case, monkeypatch):
    """Every path of the expert mixture (the dense mixture, whole and in blocks of rows as
    the CPU runs a large one, padded blocks per expert, a loop over experts, and the one
    forward chooses) equals the literal sum over experts, values and gradients, the logits
    of z included."""
    from htdviz.distill import experts as experts_module
    from htdviz.distill.experts import Experts
    torch.manual_seed(0)

    def blocks_of_rows(rows, s, z):        # 40 rows: blocks of 15, 15 and 10
        monkeypatch.setattr(experts_module, "MIXTURE_ROWS", rows)
        try:
            return experts.mixture(s, z)
        finally:
            monkeypatch.undo()

    k = 8
    experts = Experts(k, 3, 8)
    s = torch.randn(40, 3, requires_grad=True)
    rows = torch.arange(40)
    uneven = "uneven" in case
    first = torch.where(rows < 36, 0, rows % 4 + 1) if uneven else rows % k
    second = (first + 1 + (0 if uneven else rows % 2)) % k
    logits = torch.randn(40, k)
    if case != "dense":        # -inf everywhere but the kept experts: their softmax is 0.0
        keep = F.one_hot(first, k).bool()
        if case.startswith("two"):
            keep |= F.one_hot(second, k).bool()
        logits = logits.masked_fill(~keep, float("-inf"))
    logits.requires_grad_(True)
    z = torch.softmax(logits, dim=1)
    per_row = {"one": 1, "two": 2, "dense": k}[case.split()[0].split("-")[0]]
    assert torch.equal((z > 0).sum(1), torch.full((40,), per_row))
    expert, row = torch.nonzero(z.detach().T).unbind(1)
    paths = {"chosen": experts, "mixture": experts.mixture,
             "mixture in blocks of 15 rows": lambda s, z: blocks_of_rows(15, s, z)}
    if case != "dense":
        paths["padded"] = lambda s, z: experts.padded_mixture(s, z, expert, row)
        paths["per expert"] = lambda s, z: experts.per_expert_mixture(s, z, expert, row)
    wrt = [s, logits] + list(experts.parameters())
    for path, run in paths.items():
        z = torch.softmax(logits, dim=1)      # a graph of its own for each side
        fast = run(s, z)
        z = torch.softmax(logits, dim=1)
        slow = sum(z[:, e:e + 1] * literal_experts(experts, e)(s) for e in range(k))
        assert_close(fast, slow, f"{case} experts, {path}")
        pairs = zip(grads(fast.square().sum(), wrt), grads(slow.square().sum(), wrt))
        for i, (a, b) in enumerate(pairs):
            assert_close(a, b, f"{case} experts, {path}, grad #{i}")


@pytest.mark.parametrize("make", [
    lambda tu, ti, g: HTD(tu, ti, 4, n_groups=3, generator=g),
    lambda tu, ti, g: DE(tu, ti, 4, n_groups=3, generator=g),
    lambda tu, ti, g: FitNet(tu, ti, 4, generator=g),
])
def test_distillers_draw_from_their_generator(make):
    """Initialisation and Gumbel noise come from the generator given, never from the global
    torch RNG: the same seed gives the same values, whatever the global state, and the
    global state is left untouched."""
    tu, ti, users, items, su, si = make_problem(2)

    def build_and_run(global_seed):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        distiller = make(tu, ti, torch.Generator().manual_seed(9))
        loss = distiller(users, items, su, si)["loss"]
        assert torch.equal(torch.get_rng_state(), before)
        return [p.detach().clone() for p in distiller.parameters()], loss.detach()

    params_a, loss_a = build_and_run(1)
    params_b, loss_b = build_and_run(2)
    for a, b in zip(params_a, params_b):
        assert torch.equal(a, b)
    assert torch.equal(loss_a, loss_b)
    params_c, _ = (lambda: (list(make(tu, ti, torch.Generator().manual_seed(10)).parameters()),
                            None))()
    assert not all(torch.equal(a, c) for a, c in zip(params_a, params_c))


def test_generator_init_has_torch_linear_distribution():
    """linear(d_in, d_out, generator): uniform in +-1/sqrt(d_in), like torch.nn.Linear."""
    from htdviz.distill._common import linear
    layer = linear(400, 300, torch.Generator().manual_seed(0))
    bound = 1 / 20
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.99 * bound
    assert abs(float(layer.weight.detach().std()) - bound / 3 ** 0.5) < 1e-3

# --------------------------------------------------------------------------------------
# The load-balancing term (not the authors' method; off by default)
# --------------------------------------------------------------------------------------

def test_balance_loss_planted_values_and_gradient():
    k = 5
    collapsed = torch.zeros(40, k)
    collapsed[:, 0] = 30.0                                   # every entity sure of group 0
    assert distill.balance_loss(collapsed).item() == pytest.approx(k, rel=1e-6)
    even = torch.full((40, k), -30.0)
    even[torch.arange(40), torch.arange(40) % k] = 30.0      # one-hot, evenly spread
    assert distill.balance_loss(even).item() == pytest.approx(1.0, rel=1e-6)
    logits = torch.zeros(40, k)
    logits[:30, 0] = 1.0                                     # 30 of 40 lean to group 0
    logits.requires_grad_(True)
    distill.balance_loss(logits).backward()
    # descending the gradient takes probability away from the crowded group
    assert logits.grad[:, 0].sum() > 0 > logits.grad[:, 1:].sum()


def _htd(balance_weight):
    g = torch.Generator().manual_seed(0)
    teacher_users, teacher_items = torch.randn(30, 12, generator=g), torch.randn(40, 12,
                                                                                 generator=g)
    return distill.HTD(teacher_users, teacher_items, 4, n_groups=3,
                       generator=torch.Generator().manual_seed(1),
                       balance_weight=balance_weight)


def test_balance_weight_adds_its_term_and_zero_changes_nothing():
    users, items = torch.arange(10), torch.arange(15)
    g = torch.Generator().manual_seed(2)
    su, si = torch.randn(10, 4, generator=g), torch.randn(15, 4, generator=g)
    noise = {"user": torch.zeros(10, 3), "item": torch.zeros(15, 3)}
    off, on = _htd(0.0), _htd(2.0)
    out_off = off(users, items, su, si, noise)
    out_on = on(users, items, su, si, noise)
    assert "balance" not in out_off
    balance = on.assignment.balance(users, items)
    assert 2.0 <= balance.item() <= 6.0                      # in [1, K] per entity type
    assert out_on["loss"].item() == pytest.approx(out_off["loss"].item() + 2.0 * balance.item(),
                                                  rel=1e-6)
