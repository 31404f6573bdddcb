"""HTD: hierarchical topology distillation (Kang et al., KDD 2021; docs/method.md §5).

Per batch set (unique users + unique items, one matrix):
1. hard groups: argmax of the selection networks on the teacher representations (no
   gradient); user groups and item groups are distinct (2K in all);
2. group-level topology between the groups' prototypes (mean representations in the batch):
   Group(P,e) - prototype-to-entity cosines (the reference design), or Group(P,P) -
   prototype-to-prototype cosines;
3. entity-level topology: the FTD term restricted to pairs in the same group;
4. L_HTD = alpha * (entity + group) + (1 - alpha) * L_GA, L_GA the group-assignment loss of
   :mod:`htdviz.distill.experts`.

The two quirks of the reference implementation are switches whose defaults reproduce it:
``positive_pairs_only`` (entity pairs kept only where the teacher cosine is > 0) and
``detach_student_prototypes`` (student prototypes are constants).

Speed without changing a value: the entity level only ever looks at same-group pairs, so
on the CPU it is computed on the group blocks of the batch (batched matmuls over blocks of
similar size) instead of N x N matrices and masks. On a GPU the N x N matrices of a batch
are cheap and what costs is waiting for the device, so there the entity level is one masked
N x N product and nothing in the loss reads a value back to the host.
"""
from __future__ import annotations

import torch
from torch import nn

from ..options import Option
from ._common import unit
from .base import Distiller, register_method
from .experts import BALANCE_WEIGHT, N_GROUPS, TEMPERATURE_END, GroupAssignment

GROUP_DESIGNS = ("P,e", "P,P")
ENTITY_METHODS = ("auto", "blocks", "dense")


def within_group_error(teacher: torch.Tensor, student: torch.Tensor, labels: torch.Tensor,
                       positive_pairs_only: bool = True, method: str = "auto") -> torch.Tensor:
    """sum over same-group ordered pairs (a, b), a = b included, of (cos t - cos s)^2.

    teacher (N, d_t), student (N, d_s), labels (N,) int. With ``positive_pairs_only`` only
    pairs whose teacher cosine is > 0 count.

    ``method="blocks"``: groups are taken in size classes (sizes in (2^(j-1), 2^j]); each
    class is one batched matmul over its groups' blocks padded to the class's largest group,
    so the work is within 4x of the same-group pairs themselves instead of N x N; a large
    block is taken in tiles (:func:`_block_error`).
    ``method="dense"``: N x N matrices and a same-group mask, with no host synchronisation.
    ``"auto"`` (default) is dense on a GPU and blocks elsewhere; all give the same value.
    """
    if method not in ENTITY_METHODS:
        raise ValueError(f"method must be one of {ENTITY_METHODS}, got {method!r}")
    t, s = unit(teacher), unit(student)
    if method == "dense" or (method == "auto" and teacher.is_cuda):
        t_sim, s_sim = t @ t.T, s @ s.T
        keep = labels[:, None] == labels[None, :]
        if positive_pairs_only:
            keep = keep & (t_sim > 0)
        return (t_sim - s_sim).square().mul(keep).sum()
    groups, group_of, sizes = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(group_of)                     # entities sorted by group
    starts = (torch.cumsum(sizes, 0) - sizes).tolist()
    size_list = sizes.tolist()
    size_class = torch.ceil(torch.log2(sizes.double())).long()
    total = s.new_zeros(())
    for cls in torch.unique(size_class).tolist():
        members = torch.nonzero(size_class == cls).squeeze(1).tolist()
        class_sizes = sizes[members]
        largest = int(class_sizes.max())
        # (entity, block, slot) of every entity of this class's groups
        rows = torch.cat([order[starts[g]:starts[g] + size_list[g]] for g in members])
        block = torch.repeat_interleave(torch.arange(len(members), device=labels.device),
                                        class_sizes)
        slot = torch.cat([torch.arange(size_list[g], device=labels.device) for g in members])
        blocks_t = t.new_zeros(len(members), largest, t.shape[1]).index_put((block, slot), t[rows])
        blocks_s = s.new_zeros(len(members), largest, s.shape[1]).index_put((block, slot), s[rows])
        total = total + _block_error(blocks_t, blocks_s, positive_pairs_only)
    return total


#: The entity level cuts a block of more than this many entities into tiles of at most this
#: many per side (benchmarks/bench_entity_level.py: an item block of 1,900 entities costs
#: 0.4x in tiles of 475, whose cosines stay in the cache).
TILE = 512


def _block_error(t: torch.Tensor, s: torch.Tensor, positive_pairs_only: bool) -> torch.Tensor:
    """sum over the ordered pairs of slots (a, b) of each block of (cos t - cos s)^2, for unit
    rows t (G, m, d_t) and s (G, m, d_s); with ``positive_pairs_only`` only pairs whose
    teacher cosine is > 0.

    Blocks larger than :data:`TILE` are taken tile by tile, and only the tiles on and
    above the diagonal: both cosines are symmetric, so a tile below it adds what its mirror
    adds, and each off-diagonal tile counts twice (exactly, a doubling). Padding rows are
    zero vectors: their cosines are exactly 0 on both sides, so they add exactly 0 (and
    pass back 0) without a mask.
    """
    tiles = -(-t.shape[1] // TILE)
    t_tiles, s_tiles = t.chunk(tiles, dim=1), s.chunk(tiles, dim=1)
    total = s.new_zeros(())
    for i in range(len(t_tiles)):
        for j in range(i, len(t_tiles)):
            t_sim = t_tiles[i] @ t_tiles[j].transpose(1, 2)                      # (G, m_i, m_j)
            s_sim = s_tiles[i] @ s_tiles[j].transpose(1, 2)
            error = (t_sim - s_sim).square()
            error = (error.mul(t_sim > 0) if positive_pairs_only else error).sum()
            total = total + (error if i == j else 2 * error)
    return total


def group_prototypes(repr_: torch.Tensor, labels: torch.Tensor,
                     n_groups: int | None = None) -> torch.Tensor:
    """Mean representation of each group 0..n_groups-1 in ``labels``: (n_groups, d).

    A group absent from ``labels`` gets a zero row (whose cosine with anything is 0, so it
    adds exactly 0 to the topology errors). ``n_groups`` defaults to ``labels.max() + 1``.
    """
    n_groups = int(labels.max()) + 1 if n_groups is None else n_groups
    sums = repr_.new_zeros(n_groups, repr_.shape[1]).index_add(0, labels, repr_)
    sizes = repr_.new_zeros(n_groups).index_add(0, labels, repr_.new_ones(labels.shape[0]))
    return sums / sizes.clamp_min(1)[:, None]


def group_level_error(teacher: torch.Tensor, student: torch.Tensor, labels: torch.Tensor,
                      design: str = "P,e", detach_student_prototypes: bool = True,
                      n_groups: int | None = None):
    """Group-level topology error: Group(P,e) or Group(P,P) (docs/method.md §5.4).

    Sums over the groups present in ``labels`` (ids 0..n_groups-1)."""
    proto_t = group_prototypes(teacher, labels, n_groups)
    proto_s = group_prototypes(student.detach() if detach_student_prototypes else student,
                               labels, n_groups)
    if design == "P,e":
        t_sim = unit(proto_t) @ unit(teacher).T                                  # (G, N)
        s_sim = unit(proto_s) @ unit(student).T
    else:
        t_sim = unit(proto_t) @ unit(proto_t).T                                  # (G, G)
        s_sim = unit(proto_s) @ unit(proto_s).T
    return (t_sim - s_sim).square().sum()


class HTD(Distiller):
    """Hierarchical topology distillation as a distiller for :func:`htdviz.train.fit`.

    Parameters
    ----------
    teacher_user_repr : array or tensor of shape (n_users, d_t)
    teacher_item_repr : array or tensor of shape (n_items, d_t)
    student_dim : int
    n_groups : int, default 30
        K, groups per entity type.
    alpha : float, default 0.5
        Weight of the topology terms against the group-assignment loss.
    group_design : {"P,e", "P,P"}, default "P,e"
    positive_pairs_only : bool, default True
        Quirk (a) of the reference implementation.
    detach_student_prototypes : bool, default True
        Quirk (b) of the reference implementation.
    temperature_start, temperature_end : float, default 1.0, 1e-10
    generator : torch.Generator, optional
        Draws the initialisation and the Gumbel noise (default: the global torch RNG).
    balance_weight : float, default 0.0
        Weight of the load-balancing term of the group assignment
        (:func:`~htdviz.distill.experts.balance_loss`), added to L_HTD; 0 (the default) is
        the authors' method.
    """

    options = (
        N_GROUPS,
        Option("alpha", 0.5, "HTD: weight of the topology terms against group assignment",
               low=0.0, high=1.0),
        Option("group_design", "P,e", "HTD group-level topology: 'P,e' (prototype-to-entity, "
               "the paper's) or 'P,P' (prototype-to-prototype)", choices=GROUP_DESIGNS,
               metavar="{P,e | P,P}", label="-PP"),
        Option("positive_pairs_only", True, "HTD: also keep same-group pairs whose teacher "
               "cosine is <= 0 (quirk a of the authors' code off)", flag="--all-pairs",
               invert=True, label="-allpairs"),
        Option("detach_student_prototypes", True, "HTD: student prototypes carry gradient "
               "(quirk b of the authors' code off)", flag="--live-prototypes", invert=True,
               label="-liveproto"),
        BALANCE_WEIGHT,
        TEMPERATURE_END,
    )
    display_name = "HTD"

    def __init__(self, teacher_user_repr, teacher_item_repr, student_dim: int,
                 n_groups: int = 30, alpha: float = 0.5, group_design: str = "P,e",
                 positive_pairs_only: bool = True, detach_student_prototypes: bool = True,
                 temperature_start: float = 1.0, temperature_end: float = 1e-10,
                 generator: torch.Generator | None = None, balance_weight: float = 0.0):
        super().__init__()
        if group_design not in GROUP_DESIGNS:
            raise ValueError(f"group_design must be one of {GROUP_DESIGNS}, got {group_design!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.assignment = GroupAssignment(teacher_user_repr, teacher_item_repr, student_dim,
                                          n_groups, temperature_start, temperature_end,
                                          generator, balance_weight)
        self.alpha, self.group_design = alpha, group_design
        self.positive_pairs_only = positive_pairs_only
        self.detach_student_prototypes = detach_student_prototypes

    @property
    def n_groups(self) -> int:
        return self.assignment.n_groups

    @property
    def selection(self) -> nn.ModuleDict:
        """The selection networks ``selection["user"]`` and ``selection["item"]`` (Linear
        d_t -> K)."""
        return self.assignment.selection

    @property
    def temperature(self) -> float:
        return self.assignment.temperature

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        self.assignment.start_epoch(epoch, n_epochs)

    def hard_groups(self, kind: str, teacher_repr=None) -> torch.Tensor:
        """The hard group (0..K-1) of users or items; see :meth:`GroupAssignment.hard_groups`."""
        return self.assignment.hard_groups(kind, teacher_repr)

    def forward(self, users, items, student_users, student_items,
                noise=None) -> dict[str, torch.Tensor]:
        teacher_users = self.assignment.teacher("user", users)
        teacher_items = self.assignment.teacher("item", items)
        labels = torch.cat([self.hard_groups("user", teacher_users),
                            self.hard_groups("item", teacher_items) + self.n_groups])
        teacher = torch.cat([teacher_users, teacher_items])
        student = torch.cat([student_users, student_items])
        entity = within_group_error(teacher, student, labels, self.positive_pairs_only)
        group = group_level_error(teacher, student, labels, self.group_design,
                                  self.detach_student_prototypes, 2 * self.n_groups)
        assignment = self.assignment.loss(users, items, student_users, student_items, noise)
        loss = self.alpha * (entity + group) + (1 - self.alpha) * assignment
        out = {"entity": entity.detach(), "group": group.detach(),
               "assignment": assignment.detach()}
        weight = self.assignment.balance_weight
        if weight:
            balance = self.assignment.balance(users, items)
            loss = loss + weight * balance
            out["balance"] = balance.detach()
        return {"loss": loss, **out}


register_method("htd", HTD, built_in=True)
