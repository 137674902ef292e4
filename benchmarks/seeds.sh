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
# after 1 and 2 episodes, warm online NR, training and evaluation seconds; at the end, per NAME, the
# mean over its seeds with a 95% t-interval (SUMMARY lines).
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
# Over the runs in OUT/results.txt (this call's and any earlier one's), per NAME: the mean of the best
# frozen NR after one episode across training seeds, its 95% t-interval, and how many reach 0.85.
python3 - $OUT/results.txt <<'PY'
import re, statistics, sys
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT (\S+) s(\d+) best=([-\d.]+)", line)
    if m:
        runs.setdefault(m[1], {})[int(m[2])] = float(m[3])  # a seed run twice: its last line
for name, by_seed in runs.items():
    x = list(by_seed.values())
    mean, n = statistics.fmean(x), len(x)
    ci = ""
    if n > 1:
        half = (T95[n - 2] if n - 1 <= len(T95) else 1.96) * statistics.stdev(x) / n ** 0.5
        ci = f" [{mean - half:.3f}, {mean + half:.3f}] (95% t-interval over seeds)"
    print(f"SUMMARY {name}: best frozen NR after one episode, mean of {n} seed(s) {mean:.3f}{ci}; "
          f">= 0.85 on {sum(v >= 0.85 for v in x)} of {n}")
PY
