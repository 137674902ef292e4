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


import torch
from torch.func import grad

from metadqn.adapters import ContextModelAdapter
from metadqn.learner import MAMLDQN
from metadqn.replay import Batch
from side_by_side import median_seconds_per_iteration, print_result, side_by_side_parser


def func_grad_descend(adapter, c: torch.Tensor, support: Batch, steps: int) -> torch.Tensor:
    """The reference inner loop: K steps with ∇_c from ``torch.func.grad`` (no steps past K)."""
    step = grad(lambda context: adapter.model.loss(adapter.params, context, support, adapter.obs_weight))
    for i in range(min(steps, int(adapter.step_sizes.shape[0]))):
        g = step(c)
        c = c - adapter.step_sizes[i] * (g.detach() if adapter.first_order else g)
    return c


def main() -> None:
    parser = side_by_side_parser(__doc__)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    explicit = ContextModelAdapter._descend
    variants = {"explicit": explicit, "func.grad": lambda self, c, s, k: func_grad_descend(self, c, s, k)}
    learners = {name: MAMLDQN(args.family, algo=args.algo) for name in variants}
    cfg = learners["explicit"].config
    train, _ = learners["explicit"].split()
    med = median_seconds_per_iteration(learners, train, args.iterations, owner=ContextModelAdapter,
                                       attribute="_descend", variants=variants)
    print_result(args, cfg, med, speedup=round(med["func.grad"] / med["explicit"], 2))


if __name__ == "__main__":
    main()
