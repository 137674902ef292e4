"""What a memoryless Q-network could reach on gridnav: the best frozen policy that reads only its
cell (a deterministic map from cell to action — what a greedy Q(s, a; c) with the context fixed
expresses) against the frozen information limit (the best open-loop plan), on the evaluation's
own held-out tasks and random support data.

It prints one line per support budget: both plans' NR with 95% CIs (each
plan scored on the true goal, as `metadqn evaluate` scores the limit), the posterior-expected
NR each plan would get (each goal normalized on its own task: the comparison without the luck of
which goal is true), on how many instances the memoryless plan's expected return (the quantity both
plans maximise) is lower, and the search's cost.

    python benchmarks/memoryless_limit.py                          # gridnav, 20 held-out tasks x 5 runs
    python benchmarks/memoryless_limit.py --family-options '{"obstacles": 10}' --budgets 1,2,3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import metadqn
from metadqn.evaluate import EvalConfig
from metadqn.limits import support_data
from metadqn.meta.config import MetaConfig
from metadqn.stats import interval, normalized


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="gridnav")
    ap.add_argument("--family-options", default="{}", help="JSON object of family options")
    ap.add_argument("--budgets", default="1,2", help="support episodes, comma-separated")
    ap.add_argument("--seeds", type=int, default=5, help="support runs per task (the evaluation's --seeds)")
    args = ap.parse_args()
    family = metadqn.make_family(args.family, **json.loads(args.family_options))
    if not hasattr(family, "_best_memoryless_path") or family.start_cell() is None or family.cue_steps:
        raise SystemExit(f"{family.name}: the memoryless plan is computed for gridnav families with a fixed start "
                         "and no goal cue only")
    meta, cfg = MetaConfig(), EvalConfig(seeds=args.seeds)
    _, tasks = family.split(meta.n_train_tasks, meta.n_test_tasks, meta.split_seed)
    rand = np.array([family.random_return(t) for t in tasks])
    oracle = np.array([family.oracle_return(t) for t in tasks])
    print(f"{family.name} {family.options}: {len(tasks)} held-out tasks x {args.seeds} runs of random support data")
    for budget in (int(b) for b in args.budgets.split(",")):
        instances, data = support_data(family, tasks, runs_per_task=args.seeds, episodes=budget, seed=cfg.data_seed)
        true, expected, seconds, goals = {"frozen": [], "memoryless": []}, {"frozen": [], "memoryless": []}, [], []
        objective: dict[str, list[float]] = {"frozen": [], "memoryless": []}  # what both plans maximise
        scale: dict[tuple, tuple[float, float]] = {}  # (layout, goal) -> (random, optimal return)
        for task, d in zip(instances, data):
            posterior = family.goal_posterior(task, d)
            goals.append(len(posterior))
            if len(posterior) > family.MAX_LIMIT_GOALS:
                raise SystemExit(f"a posterior of {len(posterior)} goals: over MAX_LIMIT_GOALS, no exact plan")
            t0 = time.perf_counter()
            tables = family._plan_tables(task, posterior)  # the open-loop DP, shared by both plans
            plans = {"frozen": family._open_loop(tables), "memoryless": family._memoryless_path(tables)}
            seconds.append(time.perf_counter() - t0)
            moved = [family.task(**{**task.params, "goal": list(g)}) for g in posterior]
            for t in moved:
                key = (t.params.get("layout"), tuple(t["goal"]))
                if key not in scale:
                    scale[key] = (family.random_return(t), family.oracle_return(t))
            low, high = (np.array([scale[(t.params.get("layout"), tuple(t["goal"]))][i] for t in moved]) for i in (0, 1))
            for kind, plan in plans.items():
                true[kind].append(family._path_return(task, tuple(task["goal"]), plan))
                returns = np.array([family._path_return(t, tuple(t["goal"]), plan) for t in moved])
                objective[kind].append(returns.mean())
                # NR in expectation over the posterior, each goal normalized on its own task
                expected[kind].append(normalized(returns[:, None], low, high).mean())
        shape = (len(tasks), args.seeds)
        nr = {k: interval(normalized(np.reshape(v, shape), rand, oracle), cfg.bootstrap_reps, cfg.seed)
              for k, v in true.items()}
        expected_nr = {k: float(np.mean(v)) for k, v in expected.items()}
        lose = int(np.sum(np.array(objective["frozen"]) - np.array(objective["memoryless"]) > 1e-9))
        print(f"budget {budget}: frozen limit NR {nr['frozen']['mean']:.3f} [{nr['frozen']['ci_low']:.3f}, "
              f"{nr['frozen']['ci_high']:.3f}], memoryless {nr['memoryless']['mean']:.3f} "
              f"[{nr['memoryless']['ci_low']:.3f}, {nr['memoryless']['ci_high']:.3f}] on the true goals; "
              f"posterior-expected NR {expected_nr['frozen']:.3f} vs {expected_nr['memoryless']:.3f}; "
              f"the memoryless plan's expected return is lower on {lose} of {len(instances)} instances; posterior goals {np.mean(goals):.1f} on average "
              f"(max {max(goals)}); plans {np.mean(seconds) * 1e3:.0f} ms per instance (max {max(seconds):.2f} s)")


if __name__ == "__main__":
    main()
