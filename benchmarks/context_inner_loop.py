"""Context MAML's inner loop: the model head's explicit context gradient vs torch.func.grad.

Every inner step of context MAML (and of the encoder's refinement) needs ∇_c L_model(c;
support). The adapter computes it by explicit back-propagation along the context's path
(`ModelHead.loss_and_context_grad`); the reference here is what the adapter did before, a
`torch.func.grad` transform of the loss per step (second order: the meta-gradient
differentiates through it). Two learners of the family's recommended settings meta-train side
by side in one process, one iteration of each in turn (so both see the same machine load), one
with each inner loop. Reported: the median seconds per meta-iteration of each and their ratio.
(That both compute the same meta-gradient is a test: tests/test_context.py.) Both use the
model head's current forward pass, whose first layer is already factored (the other part of
the speed-up, not measured here).

    python benchmarks/context_inner_loop.py [--family gridnav] [--algo context] [--iterations 12]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch.func import grad

from metadqn.adapters import ContextModelAdapter
from metadqn.learner import MAMLDQN
from metadqn.replay import Batch


def func_grad_descend(adapter, c: torch.Tensor, support: Batch, steps: int) -> torch.Tensor:
    """The reference inner loop: K steps with ∇_c from ``torch.func.grad`` (no steps past K)."""
    step = grad(lambda context: adapter.model.loss(adapter.params, context, support, adapter.obs_weight))
    for i in range(min(steps, int(adapter.step_sizes.shape[0]))):
        g = step(c)
        c = c - adapter.step_sizes[i] * (g.detach() if adapter.first_order else g)
    return c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gridnav")
    parser.add_argument("--algo", default="context", choices=("context", "encoder"))
    parser.add_argument("--iterations", type=int, default=12, help="timed meta-iterations per variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    explicit = ContextModelAdapter._descend
    variants = {"explicit": explicit, "func.grad": lambda self, c, s, k: func_grad_descend(self, c, s, k)}
    learners = {name: MAMLDQN(args.family, algo=args.algo) for name in variants}
    cfg = learners["explicit"].config
    train, _ = learners["explicit"].split()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(args.iterations + 1):  # the first iteration of each warms up and is not timed
        for name, descend in variants.items():
            ContextModelAdapter._descend = descend
            try:
                t0 = time.perf_counter()
                learners[name].meta_train(train, iterations=i + 1, test_tasks=[], progress=False)
                if i:
                    times[name].append(time.perf_counter() - t0)
            finally:
                ContextModelAdapter._descend = explicit
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"family": args.family, "algo": args.algo, "instances": cfg.n_train_tasks * cfg.envs_per_task,
                      "starts": cfg.context_starts, "inner_steps": cfg.inner_steps,
                      "outer_steps": cfg.outer_steps, "threads": args.threads,
                      "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                      "s_per_meta_iteration": {k: round(v, 3) for k, v in med.items()},
                      "speedup": round(med["func.grad"] / med["explicit"], 2)}, indent=1))


if __name__ == "__main__":
    main()
