"""Does meta-training help the inner loop at all? Held-out NR before and after one inner
step, for the untrained network and for the same network after meta-training (mean greedy
return instead of NR for families without an exact optimum).

    python benchmarks/untrained_vs_meta.py --family gridnav --iterations 150 --episodes 5 --seeds 0 1

Same learner, same held-out tasks, same support-data seed in both measurements; only the
meta-parameters differ.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from metadqn import MAMLDQN, make_family


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="gridnav")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--episodes", type=int, default=1, help="support episodes at test time")
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--envs-per-task", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="MetaConfig override")
    ap.add_argument("--family-options", default="{}", help="JSON object of family options")
    args = ap.parse_args()
    overrides = {"algo": "maml", **{k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}}
    torch.set_num_threads(1)
    family = make_family(args.family, **json.loads(args.family_options))
    train, test = family.split(args.n_train, args.n_test, seed=0)
    print(f"{args.family} {family.options}: {args.n_train} train / {args.n_test} held-out tasks, {args.iterations} iterations, "
          f"{args.episodes} support episode(s), 4 runs per task, overrides {overrides}")
    metric = "NR" if all(family.oracle_return(t) is not None for t in test) else "return"  # NR needs exact optima
    print(f"| seed | untrained {metric} k=0 | untrained {metric} k=1 | meta-trained {metric} k=0 | "
          f"meta-trained {metric} k=1 | s |\n|---|---|---|---|---|---|")
    for seed in args.seeds:
        t0 = time.perf_counter()
        learner = MAMLDQN(family, envs_per_task=args.envs_per_task, eval_every=0, seed=seed,
                          iterations=args.iterations, **overrides)
        key = "nr" if metric == "NR" else "return"
        before = learner.adaptation_returns(test, steps=(0, 1), runs=4, episodes=args.episodes, seed=3)[key]
        learner.meta_train(train, progress=False)
        after = learner.adaptation_returns(test, steps=(0, 1), runs=4, episodes=args.episodes, seed=3)[key]
        print(f"| {seed} | {float(before[0].mean()):.2f} | {float(before[1].mean()):.2f} | "
              f"{float(after[0].mean()):.2f} | {float(after[1].mean()):.2f} | {time.perf_counter() - t0:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
