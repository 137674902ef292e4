"""The timing loop shared by the side-by-side benchmarks (context_inner_loop.py, choose_once.py).

Several learners meta-train in one process, one iteration of each in turn, each with its
variant patched in (an attribute set to the variant's value), so every variant sees the same
machine load; the first iteration of each warms up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any, Mapping, Sequence

import torch

from metadqn.learner import MAMLDQN
from metadqn.tasks import Task


def side_by_side_parser(doc: str) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes (its description: ``doc``'s first line)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--family", default="gridnav")
    parser.add_argument("--algo", default="context", choices=("context", "encoder"))
    parser.add_argument("--iterations", type=int, default=12, help="timed meta-iterations per variant")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def median_seconds_per_iteration(learners: Mapping[str, MAMLDQN], train: Sequence[Task], iterations: int, *,
                                 owner: Any, attribute: str, variants: Mapping[str, Any]) -> dict[str, float]:
    """Each learner's median seconds per meta-iteration over ``iterations`` timed iterations,
    meta-trained on ``train`` with ``owner.attribute`` set to its ``variants[name]`` (restored
    after each iteration)."""
    original = getattr(owner, attribute)
    times: dict[str, list[float]] = {name: [] for name in learners}
    for i in range(iterations + 1):
        for name, learner in learners.items():
            setattr(owner, attribute, variants[name])
            try:
                t0 = time.perf_counter()
                learner.meta_train(train, iterations=i + 1, test_tasks=[], progress=False)
                if i:
                    times[name].append(time.perf_counter() - t0)
            finally:
                setattr(owner, attribute, original)
    return {name: statistics.median(v) for name, v in times.items()}


def print_result(args: argparse.Namespace, cfg: Any, med: Mapping[str, float], **extra: Any) -> None:
    """The JSON every side-by-side benchmark prints: the setting, the machine, each variant's
    median seconds per meta-iteration, and ``extra`` (the speedup)."""
    print(json.dumps({"family": args.family, "algo": args.algo, "instances": cfg.n_train_tasks * cfg.envs_per_task,
                      "starts": cfg.context_starts, "inner_steps": cfg.inner_steps,
                      "outer_steps": cfg.outer_steps, "threads": args.threads,
                      "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                      "s_per_meta_iteration": {k: round(v, 3) for k, v in med.items()}, **extra}, indent=1))
