"""A seeded (user, item) pairs file of CiteULike's shape but 5x larger, for timing runs on
data sets of your own: 25,000 users x 28,000 items, about 700,000 interactions.

Each user belongs to one of 40 planted groups and takes about 80 % of their items from
their group's items, the rest from all items, both by a Zipf-like popularity; counts per
user are 5 + a geometric draw (mean 28).

    python benchmarks/large_pairs.py /tmp/pairs.csv        # writes the CSV (user,item)
    python -m htdviz teacher --dataset /tmp/pairs.csv --epochs 2 --eval-every 1
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd


def large_pairs(n_users: int = 25_000, n_items: int = 28_000, n_groups: int = 40,
                mean_items: float = 28.0, seed: int = 0) -> pd.DataFrame:
    """The pairs as a DataFrame with columns ``user`` and ``item`` (no duplicates)."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(n_groups, size=n_users)
    item_group = rng.integers(n_groups, size=n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = popularity[rng.permutation(n_items)]
    members = [np.flatnonzero(item_group == g) for g in range(n_groups)]
    in_group_p = [popularity[m] / popularity[m].sum() for m in members]
    global_p = popularity / popularity.sum()
    counts = 5 + rng.geometric(1.0 / (mean_items - 4), size=n_users)
    counts = np.minimum(counts, 500)
    users, items = [], []
    for u in range(n_users):
        g = user_group[u]
        n_own = rng.binomial(counts[u], 0.8)
        own = rng.choice(members[g], size=min(n_own, members[g].size), replace=False,
                         p=in_group_p[g])
        other = rng.choice(n_items, size=counts[u] - own.size, replace=False, p=global_p)
        chosen = np.unique(np.concatenate([own, other]))
        users.append(np.full(chosen.size, u))
        items.append(chosen)
    return pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(items)})


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "large_pairs.csv"
    pairs = large_pairs()
    pairs.sample(frac=1.0, random_state=0).to_csv(out, index=False)
    print(f"{out}: {pairs['user'].nunique():,} users, {pairs['item'].nunique():,} items, "
          f"{len(pairs):,} pairs")
