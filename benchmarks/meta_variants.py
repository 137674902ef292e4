"""MetaConfig variants side by side on one family: held-out greedy return after k = 0, 1, 3
adaptation steps on one new-task episode, each variant meta-trained from the same seed.

    python benchmarks/meta_variants.py --family driving default n1_meta context

Variants are named overrides of whole-network MAML's defaults (see VARIANTS; "default" = none).
Meant for exploring; the protocol with baselines and CIs is `metadqn evaluate`.
"""

from __future__ import annotations

import argparse
import time

import torch

from metadqn import MAMLDQN, make_family

VARIANTS = {
    "default": {},
    "head": {"inner_params": "head"},
    "context": {"inner_params": "context", "net": {"context": 8}},
    "fomaml": {"algo": "fomaml"},
    "eps_support0.3": {"eps_support": 0.3},
    "inner_lr0.1": {"inner_lr": 0.1},
    "mc_adapted": {"n_step": 0, "outer_target": "adapted"},   # the defaults before 2026-11-25
    "n1_meta": {"n_step": 1, "outer_target": "meta"},
    "n3_meta": {"n_step": 3, "outer_target": "meta"},
    "n3_adapted": {"n_step": 3, "outer_target": "adapted"},
    "ctx_n3_meta": {"inner_params": "context", "net": {"context": 8}, "n_step": 3, "outer_target": "meta"},
    "n3_meta_epsq0.3": {"n_step": 3, "outer_target": "meta", "eps_query": 0.3},
    "metasgd": {"algo": "metasgd"},
    "outer_steps4": {"outer_steps": 4},
    "eps_query0.3": {"eps_query": 0.3},
    "eps_query0.1": {"eps_query": 0.1},
    "inner_steps3": {"inner_steps": 3},
    "support_batch256": {"support_batch": 256},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", default=["default"], help=f"any of {sorted(VARIANTS)}")
    ap.add_argument("--family", default="driving")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    torch.set_num_threads(1)
    family = make_family(args.family)
    train, test = family.split(40, 20, seed=0)
    print(f"{args.family}: 40 train / 20 held-out tasks, {args.iterations} iterations, seed {args.seed}, "
          "3 adaptation runs per task, 1 support episode")
    print("| variant | overrides | return k=0 | k=1 | k=3 | s |\n|---|---|---|---|---|---|")
    for name in args.variants:
        t0 = time.perf_counter()
        learner = MAMLDQN(family, **{"algo": "maml", "eval_every": 0, "checkpoint_every": 0, "iterations": args.iterations,
                                     "seed": args.seed, **VARIANTS[name]})
        learner.meta_train(train, progress=False)
        r = learner.adaptation_returns(test, steps=(0, 1, 3), runs=3, seed=3)["return"]
        print(f"| {name} | `{VARIANTS[name]}` | " + " | ".join(f"{float(r[k].mean()):.2f}" for k in (0, 1, 3))
              + f" | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
