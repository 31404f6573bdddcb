"""DE: Distillation Experts with adaptive group assignment.

Kang et al., "DE-RRD: A Knowledge Distillation Framework for Recommender System", CIKM
2020; used as the group-assignment step of HTD (docs/method.md §5.1, §5.2).

Per entity type (users, items): a selection network v(t) = softmax(W t + b) over K groups
reads the teacher representation; K experts f_k (MLP d_s -> (d_s + d_t) // 2 -> d_t)
reconstruct the teacher representation from the student one. With alpha = v(t) + 1e-10
and Gumbel noise g, z = softmax((log alpha + g) / tau) and t_hat = sum_k z_k f_k(s);
L_GA = sum_e ||t_e - t_hat_e||^2. tau is annealed once per epoch from 1 to 1e-10.

Speed without changing the result (only, at most, the order of float sums):
- All K experts run as two matmuls: the first layers side by side (d_s x K*h), and the
  z-weighted hidden layers stacked against the second layers (K*h x d_t), so the
  (N, d_t, K) tensor of the reference implementation is never formed; on the CPU a few
  hundred rows at a time, which keeps the hidden layer in the cache.
- As tau falls, most weights of z underflow to exactly 0.0 in float32 (for most entities
  all but one, once tau is small). A zero weight adds exactly 0 to t_hat and passes exactly
  0 back to its expert and to the logits, so on the CPU, once fewer than
  :data:`SPARSE_SHARE` of the weights are non-zero, each expert runs only on the entities
  whose weight for it is non-zero
  (still multiplied by the weight, so every parameter receives the same zero gradients).

One approximation, at the level of float32 rounding: a weight smaller than its row's
second-largest weight times eps / 2K is set to exactly 0 (:func:`gumbel_softmax_weights`).
Without it the mixture stays dense until tau ~ 0.1, because the Gumbel-softmax weights of
the unlikely groups fall towards 0 for many epochs without underflowing; with it the
sparse paths start around tau ~ 0.3 (docs/benchmarks.md).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..options import Option
from ._common import annealed_temperature, gumbel_like, linear
from .base import Distiller, register_method

#: K, an option of DE and HTD.
N_GROUPS = Option("n_groups", 30, "K, groups per entity type (DE, HTD)", low=1)
#: The load-balancing weight, an option of DE and HTD (docs/method.md §5.7).
BALANCE_WEIGHT = Option("balance_weight", 0.0, "DE, HTD: weight of a load-balancing term "
                        "that spreads the group assignment (not the authors' method; 0: off)",
                        low=0.0, record="changed", label="-bal{:g}")
#: The Gumbel-softmax temperature at the last epoch, an option of DE and HTD (§5.2). The
#: authors' DE code (DE-RRD, CIKM 2020) anneals from 1 to 1e-10 over 1,000 epochs and
#: stops early, so 100 epochs of it end at 0.1 (docs/results.md, "DE as its authors' code
#: sets it"). A temperature is positive; below 1e-30 it is 0 for every purpose.
TEMPERATURE_END = Option("temperature_end", 1e-10, "DE, HTD: the Gumbel-softmax temperature "
                         "at the last epoch (annealed from 1; 0.1 is the authors' DE code "
                         "cut at 100 epochs)", low=1e-30, high=1.0, record="changed",
                         label="-tend{:g}")

#: The CPU runs each expert only on the rows it weighs once at most this share of the
#: (row, expert) weights is non-zero (the crossover of benchmarks/bench_experts.py) ...
SPARSE_SHARE = 0.6
#: ... in zero-padded blocks while the largest expert's load times K is at most this many
#: times the number of non-zero weights (else each expert on its own rows).
PADDED_LOAD = 3
#: The CPU's mixture takes its rows this many at a time, so that the hidden layer of a block
#: (512 x K*h floats: 6.7 MB at K = 30, against 38 MB for a Foursquare batch's 2,900 rows)
#: stays in the cache (docs/benchmarks.md, bench_experts.py's "mixture" against "mixture,
#: whole").
MIXTURE_ROWS = 512


class Experts(nn.Module):
    """K two-layer MLP experts d_s -> (d_s + d_t) // 2 -> d_t, stored as stacked weights.

    Each expert is initialised like ``torch.nn.Linear`` (uniform in +-1/sqrt(fan_in)),
    drawn from ``generator`` (default: the global torch RNG).
    """

    def __init__(self, n_experts: int, student_dim: int, teacher_dim: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        hidden = (student_dim + teacher_dim) // 2
        self.n_experts, self.hidden = n_experts, hidden

        def uniform(*shape, fan_in):
            bound = 1 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound, generator=generator))

        self.w1 = uniform(n_experts, student_dim, hidden, fan_in=student_dim)   # (K, d_s, h)
        self.b1 = uniform(n_experts, hidden, fan_in=student_dim)                # (K, h)
        self.w2 = uniform(n_experts, hidden, teacher_dim, fan_in=hidden)        # (K, h, d_t)
        self.b2 = uniform(n_experts, teacher_dim, fan_in=hidden)                # (K, d_t)

    def expert(self, k: int, student: torch.Tensor) -> torch.Tensor:
        """f_k(student): (n, d_s) -> (n, d_t)."""
        return torch.relu(student @ self.w1[k] + self.b1[k]) @ self.w2[k] + self.b2[k]

    def mixture(self, student: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """sum_k z_k f_k(s) for student (N, d_s) and weights z (N, K); returns (N, d_t).

        On the CPU, more than :data:`MIXTURE_ROWS` rows are taken that many at a time (each
        row's sum is its own), so that the (rows, K*h) hidden layer stays in the cache.
        """
        if not student.is_cuda and student.shape[0] > MIXTURE_ROWS:
            return torch.cat([self.mixture(s, w) for s, w in
                              zip(student.split(MIXTURE_ROWS), z.split(MIXTURE_ROWS))])
        n, k, h = student.shape[0], self.n_experts, self.hidden
        w1 = self.w1.permute(1, 0, 2).reshape(-1, k * h)                      # (d_s, K*h)
        hidden = torch.relu(student @ w1 + self.b1.reshape(-1))                # (N, K*h)
        weighted = (hidden.view(n, k, h) * z[:, :, None]).view(n, k * h)       # (N, K*h)
        return weighted @ self.w2.reshape(k * h, -1) + z @ self.b2             # (N, d_t)

    def forward(self, student: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """sum_k z_k f_k(s) for student (N, d_s) and weights z (N, K); returns (N, d_t).

        The same sum by the path :meth:`path` picks for z.
        """
        path, expert, row = self.path(z)
        if path == "mixture":
            return self.mixture(student, z)
        if path == "padded":
            return self.padded_mixture(student, z, expert, row)
        return self.per_expert_mixture(student, z, expert, row)

    def path(self, z: torch.Tensor) -> tuple[str, torch.Tensor | None, torch.Tensor | None]:
        """The path that suits the share of non-zero weights in z (N, K), and the
        (expert, row) pairs of those weights, sorted by expert (None for the mixture).

        On the CPU: "mixture" while more than :data:`SPARSE_SHARE` are non-zero, then each
        expert only on the rows it weighs: "padded" (:meth:`padded_mixture`) while the
        experts' loads are similar, else "per expert" (:meth:`per_expert_mixture`). The
        thresholds come from benchmarks/bench_experts.py. On a GPU always "mixture": its
        two big matmuls beat per-expert work at every tau (docs/benchmarks.md, "Training
        epochs", GPU).
        """
        if z.is_cuda:
            return "mixture", None, None
        expert, row = torch.nonzero(z.detach().T).unbind(1)
        if len(row) > SPARSE_SHARE * z.numel():
            return "mixture", None, None
        largest = int(torch.bincount(expert, minlength=self.n_experts).max()) if len(row) else 0
        if self.n_experts * largest <= PADDED_LOAD * len(row):
            return "padded", expert, row
        return "per expert", expert, row

    # The sparse paths leave out the (row, expert) pairs whose weight is exactly 0: such a
    # weight adds exactly 0 to the output and passes exactly 0 back to its expert and,
    # through the softmax, to the logits, so leaving it out changes only the order of the
    # sums. Every stacked parameter still gets a gradient (zero for idle experts).

    def padded_mixture(self, student: torch.Tensor, z: torch.Tensor, expert: torch.Tensor,
                       row: torch.Tensor) -> torch.Tensor:
        """sum_k z_k f_k(s) over the (row, expert) pairs listed (sorted by expert), each
        expert's rows in one zero-padded block: two batched matmuls over (K, m, .) where m
        is the largest expert's load. (N, d_s), (N, K), (P,), (P,) -> (N, d_t)."""
        n, k = z.shape
        weight, inputs = self._pairs(student, z, expert, row)
        sizes = torch.bincount(expert, minlength=k)
        largest, pairs = int(sizes.max()), len(row)
        starts = torch.cumsum(sizes, 0) - sizes
        slot = torch.arange(pairs, device=z.device) - starts[expert]
        blocks = inputs.new_zeros(k, largest, inputs.shape[1])
        blocks = blocks.index_put((expert, slot), inputs)                  # (K, m, d_s)
        hidden = torch.relu(torch.baddbmm(self.b1[:, None, :], blocks, self.w1))
        padded = torch.baddbmm(self.b2[:, None, :], hidden, self.w2)       # (K, m, d_t)
        outputs = padded.reshape(k * largest, -1).index_select(0, expert * largest + slot)
        return student.new_zeros(n, outputs.shape[1]).index_add(0, row, weight * outputs)

    def per_expert_mixture(self, student: torch.Tensor, z: torch.Tensor, expert: torch.Tensor,
                           row: torch.Tensor) -> torch.Tensor:
        """sum_k z_k f_k(s) over the (row, expert) pairs listed (sorted by expert), each
        expert on its own rows (no padding, K small matmuls).
        (N, d_s), (N, K), (P,), (P,) -> (N, d_t)."""
        n, k = z.shape
        weight, inputs = self._pairs(student, z, expert, row)
        sizes = torch.bincount(expert, minlength=k)
        # Unbind once: indexing the stacked weights per expert would give each a
        # full-size gradient.
        w1, b1, w2, b2 = (p.unbind(0) for p in (self.w1, self.b1, self.w2, self.b2))
        outputs = torch.cat([torch.relu(x @ w1[e] + b1[e]) @ w2[e] + b2[e]
                             for e, x in enumerate(torch.split(inputs, sizes.tolist()))
                             if len(x)])                                  # (P, d_t)
        return student.new_zeros(n, outputs.shape[1]).index_add(0, row, weight * outputs)

    @staticmethod
    def _pairs(student, z, expert, row):
        """The weights (P, 1) and student rows (P, d_s) of the listed pairs."""
        weight = z.reshape(-1).index_select(0, row * z.shape[1] + expert)[:, None]
        return weight, student.index_select(0, row)


def assignment_loss(teacher: torch.Tensor, student: torch.Tensor, selection: nn.Linear,
                    experts: Experts, temperature: float,
                    noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """L_GA of one entity type: sum_e ||t_e - sum_k z_e,k f_k(s_e)||^2.

    teacher (N, d_t), student (N, d_s); ``noise`` (N, K) is the Gumbel noise (drawn here
    from ``generator`` when None).
    """
    alpha = torch.softmax(selection(teacher), dim=1) + 1e-10                   # (N, K)
    noise = gumbel_like(alpha, generator) if noise is None else noise
    z = gumbel_softmax_weights(alpha.log() + noise, temperature)               # (N, K)
    return (teacher - experts(student, z)).square().sum()


def gumbel_softmax_weights(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """z = softmax(logits / tau) over the last axis of (N, K) logits, with every weight of a
    row below ``negligible_weights(z)`` (its second-largest weight times eps / 2K) set to
    exactly 0: an approximation at the level of float32 rounding of each row's own terms.

    Why, per row, with z_2 the row's second-largest weight and u = eps / 2 (2^-24 in
    float32), the weights set to 0 adding up to less than z_2 u:
    - forward: sum_k z_k f_k(s) moves by less than z_2 u max_k |f_k(s)|, the rounding of
      the row's second term (for expert outputs of similar size), and the row's weights
      still add up to 1 within half a unit in the last place (z_2 <= 1/2);
    - backward: through the softmax, logit j gets z_j (g_j - sum_i z_i g_i) / tau (g =
      dL/dz). A weight set to 0 would have passed less than z_2 u |g_k - gbar| / (K tau)
      to its logit and moved gbar by less than z_2 u max|g|; the row's gradient is of the
      size of z_2 |g_2 - g_1| / tau, so it changes by about u of itself (unless its
      experts' g are nearly equal);
    - a row whose weights are exactly one-hot (z_2 = 0) keeps them all: nothing to drop.
    So the threshold follows each row's own gradient: a nearly one-hot row with z_2 =
    1e-12 keeps weights down to 1e-12 u / K. What it changes beyond rounding: an expert
    whose every weight in a batch is set to 0 gets a zero gradient instead of one under u
    of the row's scale, as it already does once its weights underflow to 0.
    On a GPU the mixture runs whatever the weights (:meth:`Experts.path`), so nothing is
    set to 0 there. tests/test_distill.py checks loss and gradients against the literal
    Gumbel-softmax where weights straddle the threshold; docs/benchmarks.md compares
    whole runs with and without it.
    """
    z = torch.softmax(logits / temperature, dim=-1)
    if z.is_cuda or z.shape[-1] < 3:
        return z
    return z.masked_fill(z < negligible_weights(z), 0.0)


def negligible_weights(z: torch.Tensor) -> torch.Tensor:
    """Per row of z (N, K), the weight below which :func:`gumbel_softmax_weights` sets
    weights to 0: the row's second-largest weight times eps / 2K, shape (N, 1)."""
    with torch.no_grad():
        second = z.topk(2, dim=-1).values[..., 1:]
    return second * (torch.finfo(z.dtype).eps / 2 / z.shape[-1])


class GroupAssignment(Distiller):
    """Selection networks and experts for users and items; as a distiller this is DE.

    Parameters
    ----------
    teacher_user_repr : array or tensor of shape (n_users, d_t)
    teacher_item_repr : array or tensor of shape (n_items, d_t)
    student_dim : int
    n_groups : int, default 30
        K, the number of groups (and experts) per entity type.
    temperature_start, temperature_end : float, default 1.0, 1e-10
        The annealing schedule of the Gumbel-softmax temperature.
    generator : torch.Generator, optional
        Draws the initialisation and the Gumbel noise (default: the global torch RNG), as
        the models draw theirs.
    balance_weight : float, default 0.0
        Weight of the load-balancing term :func:`balance_loss` (not part of DE or HTD; 0
        leaves the authors' method unchanged).
    """

    options = (N_GROUPS, BALANCE_WEIGHT, TEMPERATURE_END)
    display_name = "DE"

    def __init__(self, teacher_user_repr, teacher_item_repr, student_dim: int,
                 n_groups: int = 30, temperature_start: float = 1.0,
                 temperature_end: float = 1e-10, generator: torch.Generator | None = None,
                 balance_weight: float = 0.0):
        super().__init__()
        if int(n_groups) < 1:
            raise ValueError(f"n_groups must be >= 1, got {n_groups}")
        if int(student_dim) < 1:
            raise ValueError(f"student_dim must be >= 1, got {student_dim}")
        if not 0 < temperature_end <= temperature_start:
            raise ValueError(f"need 0 < temperature_end <= temperature_start, got "
                             f"{temperature_end}, {temperature_start}")
        self.register_teacher(teacher_user_repr, teacher_item_repr)
        teacher_dim = self.teacher_users.shape[1]
        if not balance_weight >= 0:
            raise ValueError(f"balance_weight must be >= 0, got {balance_weight}")
        self.n_groups, self.student_dim = int(n_groups), int(student_dim)
        self.balance_weight = float(balance_weight)
        self.temperature_start, self.temperature_end = temperature_start, temperature_end
        self.temperature = temperature_start
        self.generator = generator
        self._noise_generators: dict[torch.device, torch.Generator] = {}
        self.selection = nn.ModuleDict({kind: linear(teacher_dim, n_groups, generator)
                                        for kind in ("user", "item")})
        self.experts = nn.ModuleDict({kind: Experts(n_groups, student_dim, teacher_dim,
                                                    generator)
                                      for kind in ("user", "item")})

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        """Anneal the temperature for 0-based ``epoch`` of ``n_epochs``."""
        self.temperature = annealed_temperature(epoch, n_epochs, self.temperature_start,
                                                self.temperature_end)

    def teacher(self, kind: str, ids: torch.Tensor) -> torch.Tensor:
        return (self.teacher_users if kind == "user" else self.teacher_items)[ids]

    @torch.no_grad()
    def hard_groups(self, kind: str, teacher_repr: torch.Tensor | None = None) -> torch.Tensor:
        """argmax_k v(t)_k for ``teacher_repr`` (default: every entity of ``kind``)."""
        if kind not in ("user", "item"):
            raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
        if teacher_repr is None:
            teacher_repr = self.teacher_users if kind == "user" else self.teacher_items
        teacher_repr = torch.as_tensor(teacher_repr, dtype=torch.float32,
                                       device=self.teacher_users.device)
        return self.selection[kind](teacher_repr).argmax(1)

    def _noise_generator(self, device: torch.device) -> torch.Generator | None:
        """The generator of the Gumbel noise on ``device``: the one given if it lives there,
        else one made once for that device and seeded from it (drawing on the host and
        copying would stall a GPU at every batch)."""
        if self.generator is None or self.generator.device == device:
            return self.generator
        if device not in self._noise_generators:
            seed = int(torch.randint(2 ** 62, (1,), generator=self.generator))
            self._noise_generators[device] = torch.Generator(device).manual_seed(seed)
        return self._noise_generators[device]

    def loss(self, users, items, student_users, student_items, noise=None) -> torch.Tensor:
        """L_GA over the batch's unique users plus, separately, its unique items."""
        noise = noise or {}
        return sum(assignment_loss(self.teacher(kind, ids), student, self.selection[kind],
                                   self.experts[kind], self.temperature, noise.get(kind),
                                   self._noise_generator(student.device))
                   for kind, ids, student in (("user", users, student_users),
                                              ("item", items, student_items)))

    def balance(self, users, items) -> torch.Tensor:
        """:func:`balance_loss` of the batch's users plus that of its items."""
        return sum(balance_loss(self.selection[kind](self.teacher(kind, ids)))
                   for kind, ids in (("user", users), ("item", items)))

    def forward(self, users, items, student_users, student_items) -> dict[str, torch.Tensor]:
        loss = self.loss(users, items, student_users, student_items)
        if not self.balance_weight:
            return {"loss": loss}
        balance = self.balance(users, items)
        return {"loss": loss + self.balance_weight * balance, "assignment": loss.detach(),
                "balance": balance.detach()}


def balance_loss(logits: torch.Tensor) -> torch.Tensor:
    """The load-balancing term of mixture-of-experts models: K * sum_k f_k * p_k.

    ``logits`` (N, K) are the selection network's outputs for N entities; f_k is the share
    of them whose argmax is k (a constant) and p_k their mean selection probability, so the
    gradient moves probability out of the crowded groups. 1 when the entities are spread
    evenly over the K groups, K when they all sit in one (docs/method.md §5.7).
    """
    n, k = logits.shape
    probs = torch.softmax(logits, dim=1)
    share = torch.bincount(logits.detach().argmax(1), minlength=k).to(probs.dtype) / n
    return k * (share * probs.mean(0)).sum()


#: DE as its own method is the group-assignment loss alone.
DE = GroupAssignment
register_method("de", DE, built_in=True)
