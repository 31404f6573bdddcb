"""Where one HTD training step spends its time on the CPU: its pieces, on real batches.

    python benchmarks/bench_htd_step.py --teacher runs/<BPR teacher run> [--epoch 50]
                                        [--one-group] [--steps 20] [--repeats 5]

Builds the student and the HTD distiller that ``bench_htd_run.py`` trains from that teacher,
sets the temperature of ``--epoch`` (of 100) and times on the same batches, interleaved,
the median of ``--repeats`` rounds of ``--steps`` batches:

- the whole step (BPR, HTD, one backward, both optimisers), as training runs it;
- each piece of HTD alone, forward and backward: the entity level, the group level and the
  group assignment (selection networks, Gumbel noise, experts), and the entity level's
  forward alone (mostly the teacher's cosines inside the groups);
- the BPR loss with its backward, and the optimisers' step.

The selection networks are as initialised, so the groups are spread (the first epochs'
layout); ``--one-group`` puts every user into one group and every item into another
(through the selection networks' biases), the layout the last epochs approach, where the
entity level is the largest. Each piece repeats work the step shares (the teacher rows,
the hard groups), so the pieces add up to more than the step.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from htdviz import experiment, train
from htdviz._threads import flush_denormals
from htdviz.config import StudentConfig, TeacherConfig
from htdviz.data import NegativeSampler
from htdviz.distill._common import unit
from htdviz.distill.htd import group_level_error, within_group_error
from htdviz.runs import load_run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--teacher", required=True, help="a finished BPR-MF teacher run folder")
    parser.add_argument("--epoch", type=int, default=50, help="the temperature of this epoch")
    parser.add_argument("--one-group", action="store_true",
                        help="every user in one group, every item in another")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    teacher_dir = Path(args.teacher)
    teacher = TeacherConfig.from_dict(load_run(teacher_dir, embeddings=False).config)
    config = StudentConfig(method="htd", dim=20, epochs=100, seed=0).inherit(teacher_dir.name,
                                                                             teacher)
    dataset = experiment.dataset_of(teacher)
    run = load_run(teacher_dir)
    model = experiment.build_model(config, dataset, config.dim)
    htd = experiment.make_distiller(config, run.representations("users"),
                                    run.representations("items"), torch.Generator().manual_seed(1))
    recipe = experiment.train_config(config)
    optimizers, row_adam = train._optimizers(model, htd, recipe)
    htd.start_epoch(args.epoch, config.epochs)
    if args.one_group:
        with torch.no_grad():
            for kind in ("user", "item"):
                htd.selection[kind].bias[0] += 100.0
    largest = [float(torch.bincount(htd.hard_groups(kind)).max()) / n for kind, n in
               (("user", dataset.n_users), ("item", dataset.n_items))]

    rng = np.random.default_rng(0)
    users_np, items_np = dataset.train_pairs()
    order = rng.permutation(len(users_np))
    users, pos = torch.from_numpy(users_np[order]), torch.from_numpy(items_np[order])
    neg = torch.from_numpy(NegativeSampler(dataset.train).sample(users_np[order], rng))
    size = recipe.batch_size
    n_batches = args.steps * (args.repeats + 1)
    batches = [(users[b * size:(b + 1) * size], pos[b * size:(b + 1) * size],
                neg[b * size:(b + 1) * size]) for b in range(n_batches)]
    assignment = htd.assignment

    def batch_set(u, p, n):
        """The batch's unique users and items, their student rows, teacher rows, groups."""
        batch_users, batch_items = torch.unique(u), torch.unique(torch.cat([p, n]))
        user_repr, item_repr = model()
        student = (user_repr.index_select(0, batch_users), item_repr.index_select(0, batch_items))
        teacher_users = assignment.teacher("user", batch_users)
        teacher_items = assignment.teacher("item", batch_items)
        labels = torch.cat([htd.hard_groups("user", teacher_users),
                            htd.hard_groups("item", teacher_items) + htd.n_groups])
        return (batch_users, batch_items), student, torch.cat([teacher_users, teacher_items]), \
            labels

    def step(u, p, n):
        train._step(model, u, p, n, htd, optimizers, row_adam, recipe.distill_weight)

    def entity(u, p, n):
        _, student, teacher, labels = batch_set(u, p, n)
        within_group_error(teacher, torch.cat(student), labels).backward()

    def entity_forward(u, p, n):
        _, student, teacher, labels = batch_set(u, p, n)
        with torch.no_grad():
            within_group_error(teacher, torch.cat(student), labels)

    def group(u, p, n):
        _, student, teacher, labels = batch_set(u, p, n)
        group_level_error(teacher, torch.cat(student), labels,
                          n_groups=2 * htd.n_groups).backward()

    def group_assignment(u, p, n):
        ids, student, _, _ = batch_set(u, p, n)
        assignment.loss(*ids, *student).backward()

    def bpr(u, p, n):
        user_repr, item_repr = model()
        pos_repr, neg_repr = item_repr.index_select(0, torch.cat([p, n])).split(len(p))
        model.training_loss(user_repr.index_select(0, u), pos_repr, neg_repr).backward()

    def optimiser_step(u, p, n):
        for optimizer in optimizers:
            optimizer.step()

    def dropped_pairs() -> float:
        """The share of same-group pairs whose teacher cosine is <= 0 (the positive-pair rule
        leaves them out, so the entity level cannot be taken from Gram matrices as FTD is)."""
        dropped = pairs = 0
        for b in batches[:args.steps]:
            _, _, teacher, labels = batch_set(*b)
            cosines = unit(teacher) @ unit(teacher).T
            same = labels[:, None] == labels[None, :]
            dropped, pairs = dropped + int((same & (cosines <= 0)).sum()), pairs + int(same.sum())
        return dropped / pairs

    pieces = {"whole step": step, "entity level": entity, "  its forward": entity_forward,
              "group level": group, "group assignment": group_assignment, "BPR": bpr,
              "optimisers": optimiser_step}
    times = {name: [] for name in pieces}
    with flush_denormals():
        for b in batches[:args.steps]:                                          # warm-up
            step(*b)
        for rep in range(args.repeats):
            for name, piece in pieces.items():
                chunk = batches[args.steps * (rep + 1):args.steps * (rep + 2)] \
                    if name == "whole step" else batches[:args.steps]
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=False)
                tic = time.perf_counter()
                for b in chunk:
                    piece(*b)
                times[name].append((time.perf_counter() - tic) / len(chunk) * 1000)
    print(f"{teacher.dataset}: batches of {size:,}; epoch {args.epoch} (tau "
          f"{htd.temperature:.2g}); largest group: {largest[0]:.0%} of users, "
          f"{largest[1]:.0%} of items; {torch.get_num_threads()} threads")
    print(f"same-group pairs with a teacher cosine <= 0: {dropped_pairs():.0%}")
    whole = np.median(times["whole step"])
    for name, values in times.items():
        print(f"{name:18s} {np.median(values):6.1f} ms  ({np.median(values) / whole:4.0%} of "
              f"the step; rounds {min(values):.1f}-{max(values):.1f})")
    n_steps = -(-dataset.n_train // size)
    print(f"an epoch of {n_steps} steps at the whole step's median: {whole * n_steps / 1000:.1f} s")


if __name__ == "__main__":
    main()
