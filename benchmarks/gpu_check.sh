#!/bin/bash
# The GPU checks of RESULTS.md's tenth-session section, on a machine with CUDA, from the repo root:
#   bash benchmarks/gpu_check.sh [OUT_DIR]     (metadqn importable: `make install` and its venv, or PYTHONPATH=src)
# 1. the CUDA tests (every algorithm on the GPU; loss and meta-gradient equal to the CPU's; a GPU run
#    opened without CUDA), 2. the command line on the GPU for every algorithm on four families
#    (train, evaluate with a baseline and --online, adapt, resume), 3. meta-training throughput of
#    context MAML on the GPU and on one CPU core, side by side.
OUT=${1:-gpu_check}; mkdir -p $OUT/sw
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
python3 -m pytest -q -p no:cacheprovider tests/test_devices.py -rs 2>&1 | tee $OUT/pytest.log
one() { f=$1; a=$2; d=$OUT/sw/$f-$a; on=""; [ $a = context -o $a = encoder ] && on="--online"
  python3 -m metadqn.cli train --family $f --algo $a --out $d --device cuda --quiet --iterations 2 --set n_train_tasks=4 \
    --set n_test_tasks=2 --set eval_every=0 > $d.log 2>&1 || { echo "FAIL train $f $a"; return; }
  python3 -m metadqn.cli evaluate $d --device cuda --baselines scratch --budgets 1 --steps 0,2 --seeds 1 $on --quiet \
    >> $d.log 2>&1 || { echo "FAIL evaluate $f $a"; return; }
  python3 -m metadqn.cli adapt $d --device cuda --steps 2 >> $d.log 2>&1 || { echo "FAIL adapt $f $a"; return; }
  python3 -m metadqn.cli train --out $d --resume --iterations 3 --quiet >> $d.log 2>&1 || { echo "FAIL resume $f $a"; return; }
  echo "ok $f $a"; }
export -f one; export OUT
for f in gridnav bandit driving cartpole-physics; do for a in context encoder maml metasgd reptile; do echo "$f $a"; done; done \
  | xargs -P 10 -n 2 bash -c 'one "$@"' _ | tee $OUT/sweep.txt
for dv in cuda cpu; do
  python3 benchmarks/meta_train_throughput.py --algo context --device $dv --envs 4 64 --iterations 5 --warmup 2 \
    --set context_starts=8 2>&1 | tee -a $OUT/throughput.txt
done
