"""Per-task DQN oracles: one after another (the old way) vs all side by side in one vmapped
run (``DQNConfig(independent=True)``, what ``metadqn evaluate`` now does). Same tasks, same
env steps per task, same hyperparameters; wall time and the mean greedy return reached.

    python benchmarks/oracle_speed.py --family driving --tasks 8 --steps 10000
"""

from __future__ import annotations

import argparse
import time

import torch

from metadqn import DQN, make_family


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="driving")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10_000, help="env steps per task")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    family = make_family(args.family)
    tasks = family.sample_tasks(args.tasks, seed=0)
    kw = dict(total_steps=args.steps, eval_every=max(1000, args.steps // 10))
    t0 = time.perf_counter()
    seq = [DQN(family, t, seed=i, **kw).learn(progress=False).evaluate(episodes=10, seed=1000).mean().item()
           for i, t in enumerate(tasks)]
    t_seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    ind = DQN(family, tasks, independent=True, seed=0, **kw).learn(progress=False)
    par = ind.evaluate(episodes=10, seed=1000).mean(1).tolist()
    t_par = time.perf_counter() - t0
    print(f"{args.family}: {args.tasks} tasks x {args.steps} env steps, {args.threads} thread(s)")
    print("| method | wall s | mean greedy return |\n|---|---|---|")
    print(f"| one after another | {t_seq:.1f} | {sum(seq) / len(seq):.2f} |")
    print(f"| side by side (vmap) | {t_par:.1f} | {sum(par) / len(par):.2f} |")
    print(f"speed-up: {t_seq / t_par:.1f}x")


if __name__ == "__main__":
    main()
