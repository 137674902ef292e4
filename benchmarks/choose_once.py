"""Context MAML with learned starts: the starts ranked once per meta-iteration vs a full choice at every meta-update.

With ``context_starts = M`` the inner loop descends from each of the M candidate contexts (no
graph) to pick the one whose end fits the support best, then descends again from the pick with
the meta-gradient's graph. Meta-training ranks the M starts once per iteration
(``Adapter.choice`` via ``choose_batch``) and every adaptation of the iteration — the query
collection and the ``outer_steps`` meta-updates — chooses among the best ``start_shortlist``
only; the reference here is the earlier path, a full M-way choice inside every ``adapt`` call
(1 + outer_steps times per iteration). Two learners of the family's recommended settings
meta-train side by side in one process, one iteration of each in turn (so both see the same
machine load). Reported: the median seconds per meta-iteration of each and their ratio. (That
the narrowed choice and its meta-gradient equal the full one on the θ it was made with is a
test: tests/test_context.py; with outer_steps = 1 the two paths are bit-identical.)

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
    variants = {"shortlist": once, "every update": lambda adapter, support, steps, keep=1: {}}
    learners = {name: MAMLDQN(args.family, algo=args.algo) for name in variants}
    cfg = learners["shortlist"].config
    if cfg.context_starts < 2:
        parser.error(f"{args.family}'s {args.algo} settings have one start (context_starts={cfg.context_starts}): "
                     "nothing to choose")
    train, _ = learners["shortlist"].split()
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
                      "start_shortlist": cfg.start_shortlist, "speedup": round(med["every update"] / med["shortlist"], 2)}, indent=1))


if __name__ == "__main__":
    main()
