"""Does a recurrent Q-network help where memory matters? ``gridnav-memory``: the goal shows
only in the first step of an episode. One DQN trained on many goals at once (the goal is
revealed, so no adaptation is needed: only memory), three ways:

- ``mlp, no history``: gridnav with cue_steps=1, an MLP on the current observation;
- ``mlp, window``: the gridnav-memory window flattened (frame stacking);
- ``gru, window``: the recurrent Q-network reading the window step by step.

    python benchmarks/memory.py --steps 20000 --tasks 20 --seeds 0 1

Reports the normalized return NR = (R - R_random) / (R_oracle - R_random) on the training
goals and on held-out goals.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from metadqn import DQN, make_family


def nr(family, tasks, returns):
    o = np.array([family.oracle_return(t) for t in tasks])
    r = np.array([family.random_return(t) for t in tasks])
    return float(np.mean((returns - r) / (o - r)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--batch", type=int, default=16, help="DQN transitions per task per update")
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = [("mlp, no history", make_family("gridnav", cue_steps=1), {"kind": "mlp"}),
                ("mlp, window", make_family("gridnav-memory"), {"kind": "mlp"}),
                ("gru, window", make_family("gridnav-memory"), {"kind": "gru", "hidden": [32, 64]})]
    print(f"gridnav-memory: {args.tasks} training goals, {args.steps} DQN env steps, batch {args.batch} per goal, "
          f"seeds {args.seeds}\n")
    print("| variant | seed | NR train goals | NR held-out goals | s |\n|---|---|---|---|---|")
    for name, family, net in variants:
        train, test = family.split(args.tasks, 10, seed=0)
        for seed in args.seeds:
            t0 = time.perf_counter()
            agent = DQN(family, train, total_steps=args.steps, seed=seed, net=net, n_envs=8, batch_size=args.batch,
                        eval_every=10_000).learn(progress=False)
            r_train = agent.evaluate(train, episodes=5, seed=99).mean(1).numpy()
            r_test = agent.evaluate(test, episodes=5, seed=99).mean(1).numpy()
            print(f"| {name} | {seed} | {nr(family, train, r_train):.2f} | {nr(family, test, r_test):.2f} | "
                  f"{time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
