"""Context-MAML (and encoder) settings side by side on one family: held-out NR (or return
where the family has no exact optimum) after k = 0, 1, 3, 5, 10 adaptation steps on one
random new-task episode, each variant meta-trained from the same seed.

    python benchmarks/context_variants.py --family gridnav default k10 encoder

Variants are named overrides of `MAMLDQN(family, algo="context")` (the algorithm defaults
apply under them; see VARIANTS). Meant for exploring; the protocol with baselines, CIs and
the information limit is `metadqn evaluate`.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from metadqn import MAMLDQN, make_family

VARIANTS: dict[str, dict] = {
    "default": {},
    "it120": {"iterations": 120},
    "it600": {"iterations": 600},
    "k10": {"inner_steps": 10},
    "lr1": {"inner_lr": 1.0},
    "lr0.5": {"inner_lr": 0.5},
    "lr5": {"inner_lr": 5.0},
    "sampled_support": {"support_batch": 64},
    "reward_only": {"model_obs_weight": 0.0},
    "wide": {"net": {"context": 16}, "model_hidden": [128, 128]},
    "first_order": {"first_order_context": True},
    "starts4": {"context_starts": 4},
    "starts8": {"context_starts": 8},
    "starts8_k10": {"context_starts": 8, "inner_steps": 10},
    "one_update": {"outer_steps": 1},
    "encoder": {"algo": "encoder"},
    "encoder_it600": {"algo": "encoder", "iterations": 600},
    "encoder_refine5_it600": {"algo": "encoder", "inner_steps": 5, "iterations": 600},
    "encoder_refine5_it1200": {"algo": "encoder", "inner_steps": 5, "iterations": 1200},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", default=["default"], help=f"any of {sorted(VARIANTS)}")
    ap.add_argument("--family", default="gridnav")
    ap.add_argument("--iterations", type=int, default=300, help="unless the variant sets it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="extra override for every variant")
    args = ap.parse_args()
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    torch.set_num_threads(1)
    family = make_family(args.family)
    train, test = family.split(40, 20, seed=0)
    ks = (0, 1, 3, 5, 10)
    print(f"{args.family}: 40 train / 20 held-out tasks, seed {args.seed}, 5 adaptation runs per task, "
          f"1 random support episode, extra overrides {extra}")
    print("| variant | overrides | " + " | ".join(f"k={k}" for k in ks) + " | s |\n|---|---|" + "---|" * (len(ks) + 1))
    for name in args.variants:
        t0 = time.perf_counter()
        values = {"algo": "context", "eval_every": 0, "checkpoint_every": 0, "iterations": args.iterations,
                  "seed": args.seed, **extra, **VARIANTS[name]}
        learner = MAMLDQN(family, **values)
        learner.meta_train(train, progress=False)
        res = learner.adaptation_returns(test, steps=ks, runs=5, seed=5)
        cells = res["nr"] if res["nr"] is not None else res["return"]
        print(f"| {name} | `{VARIANTS[name]}` | " + " | ".join(f"{float(cells[k].mean()):.2f}" for k in ks)
              + f" | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
