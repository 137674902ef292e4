#!/bin/bash
# Many training seeds of one gridnav setting side by side, each trained and then evaluated on the
# protocol of RESULTS.md (20 held-out tasks x 5 support episodes; frozen at k = 0, 5, 10 after 1 and 2
# episodes, and warm online), one thread per job. Used for the eleventh session's 24 encoder seeds:
#   bash benchmarks/seeds.sh OUT "NAME SEED [--set KEY=VALUE ...]" ...     e.g.
#   bash benchmarks/seeds.sh runs/seeds "rec 10" "rec 11" "wide 10 --set net.hidden=[128,128]" "cuda:rec 20"
# A spec starting with "cuda:" trains and evaluates on the GPU. FAMILY (default gridnav) and ALGO (default
# encoder) pick what is trained, JOBS (default: all at once) how many run at a time, DEADLINE (seconds,
# default none) stops waiting; MD is the metadqn command (default metadqn; e.g. "metadqn --import my.py").
# One line per run in OUT/results.txt: best frozen NR after one episode (k = 5 or 10), NR at k = 0/5/10
# after 1 and 2 episodes, warm online NR, training and evaluation seconds.
OUT=${1:?usage: seeds.sh OUT SPEC...}; shift; mkdir -p "$OUT"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
one() {  # one NAME SEED [--set ...]; DEV=cuda for the GPU
  local name=$1 seed=$2; shift 2; local R=$OUT/$name-s$seed t0 t1 t2
  t0=$(date +%s)
  ${MD:-metadqn} train --family ${FAMILY:-gridnav} --algo ${ALGO:-encoder} --out $R --seed $seed --quiet ${DEV:+--device $DEV} \
    "$@" > $R.train.log 2>&1 || { echo "FAIL train $name $seed: $(tail -1 $R.train.log)"; return; }
  t1=$(date +%s)
  ${MD:-metadqn} evaluate $R --baselines '' --budgets 1,2 --steps 0,5,10 --seeds 5 --online --online-warm --quiet \
    ${DEV:+--device $DEV} --json $R.eval.json > $R.eval.log 2>&1 || { echo "FAIL evaluate $name $seed: $(tail -1 $R.eval.log)"; return; }
  t2=$(date +%s)
  python3 - $R.eval.json $name $seed $((t1 - t0)) $((t2 - t1)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); nr = r["methods"][r["meta_training"]["algo"]]["nr"]
ks = lambda b: " / ".join(f"{nr[b][k]['mean']:.3f}" for k in ("0", "5", "10"))
online = " ".join(f"{n}:{m['nr']['1']['mean']:.3f}" for n, m in (r.get("online") or {}).get("methods", {}).items())
print(f"RESULT {sys.argv[2]} s{sys.argv[3]} best={max(nr['1'][k]['mean'] for k in ('5', '10')):.3f} "
      f"1ep k0/5/10 {ks('1')} | 2ep {ks('2')} | online {online} | train {sys.argv[4]}s eval {sys.argv[5]}s")
PY
}
t0=$(date +%s)
for spec in "$@"; do
  while [ -n "$JOBS" ] && [ $(jobs -r | wc -l) -ge $JOBS ]; do sleep 2; done
  case $spec in cuda:*) (DEV=cuda one ${spec#cuda:} >> $OUT/results.txt 2>&1) & ;;
                *) (one $spec >> $OUT/results.txt 2>&1) & ;; esac
done
while [ -n "$(jobs -r)" ] && { [ -z "$DEADLINE" ] || [ $(( $(date +%s) - t0 )) -lt $DEADLINE ]; }; do sleep 5; done
echo "elapsed $(( $(date +%s) - t0 )) s, still running: $(jobs -r | wc -l)" >> $OUT/results.txt
cat $OUT/results.txt
