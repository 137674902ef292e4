"""Cost of the bandit's exact online information limit (metadqn.tasks.bandit_limits): time to
build the DP's tables once, time per instance, and peak memory.

    python benchmarks/bandit_limit_cost.py                 # 5 arms × 20 pulls (the default bandit), 16 instances
    python benchmarks/bandit_limit_cost.py --arms 3 --horizon 10 --instances 64
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from metadqn.tasks import bandit_limits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=20)
    ap.add_argument("--instances", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    alpha = 1 + rng.integers(0, 4, (args.instances, args.arms))   # posteriors like those after a random episode
    beta = 1 + rng.integers(0, 4, (args.instances, args.arms))
    means = rng.random((args.instances, args.arms))
    t0 = time.perf_counter()
    bandit_limits._tables(args.arms, args.horizon)
    t1 = time.perf_counter()
    bandit_limits.bayes_adaptive_returns(alpha, beta, means, args.horizon)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{args.arms} arms × {args.horizon} pulls: {bandit_limits.state_count(args.arms, args.horizon):,} states; "
          f"tables {t1 - t0:.1f} s, {(t2 - t1) / args.instances:.2f} s per instance ({args.instances}), "
          f"peak memory {peak:.1f} GB")


if __name__ == "__main__":
    main()
