"""Context MAML with learned starts: the choice of start made once per meta-iteration vs once per meta-update.

With ``context_starts = M`` the inner loop descends from each of the M candidate contexts (no
graph) to pick the one whose end fits the support best, then descends again from the pick with
the meta-gradient's graph. Meta-training makes the pick once per iteration
(``Adapter.choice`` via ``choose_batch``) and reuses it for the query collection and all
``outer_steps`` meta-updates; the reference here is the earlier path, which picked anew inside
every ``adapt`` call (1 + outer_steps times per iteration). Two learners of the family's
recommended settings meta-train side by side in one process, one iteration of each in turn (so
both see the same machine load). Reported: the median seconds per meta-iteration of each and
their ratio. (That the pick and the meta-gradient are the same on the same θ is a test:
tests/test_context.py; with outer_steps = 1 the two paths are bit-identical.)

    python benchmarks/choose_once.py [--family gridnav] [--algo context] [--iterations 12]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import metadqn.meta.iteration as iteration
from metadqn.learner import MAMLDQN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gridnav")
    parser.add_argument("--algo", default="context", choices=("context", "encoder"))
    parser.add_argument("--iterations", type=int, default=12, help="timed meta-iterations per variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    once = iteration.choose_batch
    variants = {"once per iteration": once, "every update": lambda adapter, support, steps: {}}
    learners = {name: MAMLDQN(args.family, algo=args.algo) for name in variants}
    cfg = learners["once per iteration"].config
    if cfg.context_starts < 2:
        parser.error(f"{args.family}'s {args.algo} settings have one start (context_starts={cfg.context_starts}): "
                     "nothing to choose")
    train, _ = learners["once per iteration"].split()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.iterations + 1):  # the first iteration of each warms up and is not timed
        for name, choose in variants.items():
            iteration.choose_batch = choose
            try:
                t0 = time.perf_counter()
                learners[name].meta_train(train, iterations=i + 1, test_tasks=[], progress=False)
                if i:
                    times[name].append(time.perf_counter() - t0)
            finally:
                iteration.choose_batch = once
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"family": args.family, "algo": args.algo, "instances": cfg.n_train_tasks * cfg.envs_per_task,
                      "starts": cfg.context_starts, "inner_steps": cfg.inner_steps,
                      "outer_steps": cfg.outer_steps, "threads": args.threads,
                      "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                      "s_per_meta_iteration": {k: round(v, 3) for k, v in med.items()},
                      "speedup": round(med["every update"] / med["once per iteration"], 2)}, indent=1))


if __name__ == "__main__":
    main()
