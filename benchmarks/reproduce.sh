#!/usr/bin/env bash
# Reproduce docs/method.md §10.1 on CiteULike (reference split, BPR-MF, d_t = 200, 100 epochs,
# reference hyper-parameters, seed 0), plus the LightGCN teacher and HTD student at d_s = 20.
#
#   JOBS=3 RUNS=runs bash benchmarks/reproduce.sh         # GPU: 3 runs at a time (~15 min)
#   bash benchmarks/reproduce.sh                           # CPU: one at a time (hours)
#
# Then: python benchmarks/summarize_reproduction.py runs   (the tables of docs/results.md)
set -euo pipefail
PY=${PY:-python3}
RUNS=${RUNS:-runs}
JOBS=${JOBS:-1}
EPOCHS=${EPOCHS:-100}
SEED=${SEED:-0}                    # seeds the teachers and the students
LAYERS=${LAYERS:-2}
DATASET=${DATASET:-citeulike}     # "synthetic" for a quick smoke run of this script
# parallel jobs share the cores: one thread each unless told otherwise
[ "$JOBS" -gt 1 ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
common=(--runs "$RUNS" --epochs "$EPOCHS" --seed "$SEED" --dataset "$DATASET" --no-progress)

# 1. teachers (BPR-MF and LightGCN, d = 200), side by side
$PY -m htdviz teacher "${common[@]}" &
$PY -m htdviz teacher --model lightgcn --layers "$LAYERS" "${common[@]}" &
wait

# 2. students: the most-wanted cells first (d_s = 20 and 200), then the rest
{
  for dim in 20 200 10 100; do
    for method in htd ftd student; do echo "--method $method --dim $dim"; done
  done
  echo "--method de --dim 20"
  echo "--method fitnet --dim 20"
  echo "--method htd --dim 20 --all-pairs"
  echo "--method htd --dim 20 --live-prototypes"
  echo "--method htd --dim 20 --group-design P,P"
  echo "--method htd --dim 20 --model lightgcn --layers $LAYERS"
  echo "--method student --dim 20 --model lightgcn --layers $LAYERS"
} | xargs -P "$JOBS" -I{} sh -c "$PY -m htdviz distill {} ${common[*]} --teacher-seed $SEED --print-path"
