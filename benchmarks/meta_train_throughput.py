"""Meta-training throughput: env steps and meta-updates per second (default family gridnav).

    python benchmarks/meta_train_throughput.py [--family driving] [--device cpu|cuda] [--envs 4 16 64]
    python benchmarks/meta_train_throughput.py --algo context --envs 4 --set context_starts=8

Counts every env step of support + query collection (40 training tasks x envs per task x 2
episodes of the family's horizon per iteration) and includes the inner loop and the
second-order meta-update; a few warm-up iterations are excluded. Also prints the family's
raw batched-env speed (random actions, no network) at the same batch size.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--family", default="gridnav")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="MAMLDQN override (repeatable)")
    args = ap.parse_args()
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    torch.set_num_threads(args.threads)
    family = make_family(args.family)
    train, _ = family.split(40, 0, seed=0)
    print(f"family={args.family} device={args.device} threads={args.threads} algo={args.algo} tasks=40 "
          f"horizon={family.max_episode_steps} overrides={extra}")
    print("| envs per task | env-steps/s | meta-updates/s | raw env steps/s |\n|---|---|---|---|")
    for envs in args.envs:
        env = family.make_batched(train, envs, device=args.device, seed=0)
        env.reset()
        actions = torch.randint(0, env.n_actions, (100, *env.batch_shape), device=args.device)
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        raw = 100 * env.n_tasks * envs / (time.perf_counter() - t0)
        learner = MAMLDQN(family, **{"algo": args.algo, "envs_per_task": envs, "eval_every": 0, "device": args.device,
                                     **extra})
        learner.meta_train(train, iterations=args.warmup, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start_steps, t0 = learner.env_steps, time.perf_counter()
        learner.meta_train(train, iterations=args.warmup + args.iterations, progress=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"| {envs} | {(learner.env_steps - start_steps) / dt:,.0f} | {args.iterations / dt:.1f} | {raw:,.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
