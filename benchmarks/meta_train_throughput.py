"""Meta-training throughput on gridnav: env steps and meta-updates per second.

    python benchmarks/meta_train_throughput.py [--device cpu|cuda] [--envs 4 16 64] [--iterations 20]

Counts every env step of support + query collection (40 training tasks x envs per task x 2
episodes of 16 steps per iteration) and includes the inner loop and the second-order
meta-update; a few warm-up iterations are excluded.
"""

from __future__ import annotations

import argparse
import time

import torch

from metadqn import MAMLDQN, make_family


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--envs", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--algo", default="maml")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    family = make_family("gridnav")
    train, _ = family.split(40, 0, seed=0)
    print(f"device={args.device} threads={args.threads} algo={args.algo} tasks=40 horizon={family.max_episode_steps}")
    print("| envs per task | env-steps/s | meta-updates/s |\n|---|---|---|")
    for envs in args.envs:
        learner = MAMLDQN(family, algo=args.algo, envs_per_task=envs, eval_every=0, device=args.device)
        learner.meta_train(train, iterations=args.warmup, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start_steps, t0 = learner.env_steps, time.perf_counter()
        learner.meta_train(train, iterations=args.warmup + args.iterations, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"| {envs} | {(learner.env_steps - start_steps) / dt:,.0f} | {args.iterations / dt:.1f} |", flush=True)


if __name__ == "__main__":
    main()
