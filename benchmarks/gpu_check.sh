#!/bin/bash
# The GPU checks (RESULTS.md's tenth- and twenty-seventh-session sections), on a machine with CUDA, from the repo root:
#   bash benchmarks/gpu_check.sh [OUT_DIR]     (metadqn importable: `make install` and its venv, or PYTHONPATH=src)
# 1. the CUDA tests (every algorithm on the GPU, gridnav's pooled context MAML and a plain one; loss and
#    meta-gradient equal to the CPU's; a GPU run opened without CUDA), 2. the command line on the GPU
#    (train, evaluate with --online, adapt, resume): every algorithm on gridnav, context / blr / maml on
#    bandit, driving and cartpole-physics (SWEEP_JOBS at a time, default 5; per-task DQN oracles of 5,000
#    steps where a family has no exact optimum, so that it ends in minutes), 3. meta-training throughput
#    of context MAML on the GPU (4 and 64 envs per task) and on one CPU core (4), side by side. The tests and the sweep run at once.
OUT=${1:-gpu_check}; mkdir -p $OUT/sw
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
t0=$(date +%s)
( python3 -m pytest -q -p no:cacheprovider tests/test_devices.py -rs > $OUT/pytest.log 2>&1
  echo "pytest exit $? after $(( $(date +%s) - t0 )) s" >> $OUT/pytest.log ) &
one() { f=$1; a=$2; d=$OUT/sw/$f-$a; on=""; [ $a = context -o $a = encoder -o $a = blr ] && on="--online"
  local s=$(date +%s)
  python3 -m metadqn.cli train --family $f --algo $a --out $d --device cuda --quiet --iterations 2 --set n_train_tasks=4 \
    --set n_test_tasks=2 --set eval_every=0 > $d.log 2>&1 || { echo "FAIL train $f $a: $(tail -1 $d.log)"; return; }
  python3 -m metadqn.cli evaluate $d --device cuda --baselines '' --budgets 1 --steps 0,2 --seeds 1 $on --quiet \
    --oracle-steps 5000 >> $d.log 2>&1 || { echo "FAIL evaluate $f $a: $(tail -1 $d.log)"; return; }
  python3 -m metadqn.cli adapt $d --device cuda --steps 2 >> $d.log 2>&1 || { echo "FAIL adapt $f $a: $(tail -1 $d.log)"; return; }
  python3 -m metadqn.cli train --out $d --resume --iterations 3 --quiet >> $d.log 2>&1 || { echo "FAIL resume $f $a: $(tail -1 $d.log)"; return; }
  echo "ok $f $a $(( $(date +%s) - s )) s"; }
export -f one; export OUT
{ for a in context encoder blr maml fomaml metasgd reptile; do echo "gridnav $a"; done
  for f in bandit driving cartpole-physics; do for a in context blr maml; do echo "$f $a"; done; done; } \
  | xargs -P ${SWEEP_JOBS:-5} -n 2 bash -c 'one "$@"' _ > $OUT/sweep.txt
wait
echo "sweep and tests done after $(( $(date +%s) - t0 )) s" >> $OUT/sweep.txt
for run in "cuda 4 64" "cpu 4"; do  # 64 envs per task on one CPU core: minutes per iteration
  set -- $run; dv=$1; shift
  python3 benchmarks/meta_train_throughput.py --algo context --device $dv --envs "$@" --iterations 5 --warmup 2 \
    --set context_starts=8 >> $OUT/throughput.txt 2>&1
done
echo "all done after $(( $(date +%s) - t0 )) s" >> $OUT/throughput.txt
