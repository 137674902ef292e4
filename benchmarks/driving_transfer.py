"""Do driving tasks differ enough to need adaptation? A DQN trained on each of a few roads,
evaluated greedily on every road: the row is the road it was trained on, the column the
road it drives on.

    python benchmarks/driving_transfer.py --steps 30000

If the tasks only looked different, every row would be about as good as the diagonal.
"""

from __future__ import annotations

import argparse
import time

import torch

from metadqn import DQN, make_family

ROADS = {
    "fast-dry": dict(lanes=4, density=0.3, speed_limit=34.0, friction=1.0, safety=0.1),
    "slow-icy": dict(lanes=2, density=0.6, speed_limit=16.0, friction=0.25, safety=0.7),
    "mid-dense": dict(lanes=3, density=1.0, speed_limit=25.0, friction=0.7, safety=0.4),
    "cautious": dict(lanes=3, density=0.5, speed_limit=30.0, friction=0.5, safety=0.95),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30_000, help="DQN env steps per road")
    ap.add_argument("--episodes", type=int, default=50, help="greedy evaluation episodes per (policy, road)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    family = make_family("driving")
    tasks = {name: family.task(**p) for name, p in ROADS.items()}
    agents = {}
    for name, task in tasks.items():
        t0 = time.perf_counter()
        agents[name] = DQN(family, task, total_steps=args.steps, seed=args.seed, eval_every=5_000).learn(progress=False)
        print(f"trained on {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print("\nmean greedy return (rows: trained on; columns: evaluated on)\n")
    print("| trained on \\ road | " + " | ".join(tasks) + " |")
    print("|---" * (len(tasks) + 1) + "|")
    table = {}
    for row, agent in agents.items():
        rets = agent.evaluate(list(tasks.values()), episodes=args.episodes, seed=args.seed + 99).mean(1)
        table[row] = dict(zip(tasks, rets.tolist()))
        print(f"| {row} | " + " | ".join(f"{v:.1f}" for v in rets.tolist()) + " |")
    print("\nper road: own policy vs the best and worst policy trained elsewhere")
    for col in tasks:
        others = [table[r][col] for r in tasks if r != col]
        print(f"- {col}: own {table[col][col]:.1f}, others best {max(others):.1f}, worst {min(others):.1f}")


if __name__ == "__main__":
    main()
