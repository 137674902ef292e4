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


import torch

import metadqn.meta.iteration as iteration
from metadqn.learner import MAMLDQN
from side_by_side import median_seconds_per_iteration, print_result, side_by_side_parser


def main() -> None:
    parser = side_by_side_parser(__doc__)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = {"shortlist": iteration.choose_batch, "every update": lambda adapter, support, steps, keep=1: {}}
    learners = {name: MAMLDQN(args.family, algo=args.algo) for name in variants}
    cfg = learners["shortlist"].config
    if cfg.context_starts < 2:
        parser.error(f"{args.family}'s {args.algo} settings have one start (context_starts={cfg.context_starts}): "
                     "nothing to choose")
    train, _ = learners["shortlist"].split()
    med = median_seconds_per_iteration(learners, train, args.iterations, owner=iteration, attribute="choose_batch",
                                       variants=variants)
    print_result(args, cfg, med, start_shortlist=cfg.start_shortlist,
                 speedup=round(med["every update"] / med["shortlist"], 2))


if __name__ == "__main__":
    main()
