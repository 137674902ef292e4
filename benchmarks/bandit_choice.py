"""Which arm a bandit run pulls after one random episode, against the frozen information limit's.

    python benchmarks/bandit_choice.py RUN [RUN ...] [--steps 5,10] [--tasks 200] [--runs 2]

For each run (context, encoder or blr on the ``bandit`` family): the held-out tasks of
``split(640, TASKS)`` (after the first 640 tasks, so disjoint from the training tasks of any
run with up to 640), RUNS random support episodes each (the evaluation's data seed), adapt k
steps, and read the greedy arm at every step of an episode. The NR printed is the *expected*
one — the true arm means of the arms pulled — so it carries no noise from sampling rewards; the
limit is the Beta posterior's best arm (``BanditFamily.frozen_limit_return``) on the same data.
Also: how often the greedy first arm is the posterior's best, and how often the greedy policy
switches arms within the episode (a frozen bandit policy has no reason to).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from metadqn import MAMLDQN
from metadqn.adaptation import adapt_instances, instance_q
from metadqn.evaluate import EvalConfig
from metadqn.limits import support_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--steps", default="5,10", help="adaptation steps k (blr: any k >= 1 is the solve)")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--runs-per-task", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    steps = tuple(int(k) for k in args.steps.split(","))
    for run in args.runs:
        learner = MAMLDQN.load(run)
        family, adapter = learner.family, learner.adapter()
        if family.name != "bandit":
            raise SystemExit(f"{run}: a bandit run is needed, this one is {family.name!r}")
        _, tasks = family.split(640, args.tasks, seed=0)
        runs, seed, horizon = args.runs_per_task, EvalConfig().data_seed, family.max_episode_steps
        instances, data = support_data(family, tasks, runs_per_task=runs, episodes=1, seed=seed)
        means = np.array([t["means"] for t in instances])
        rand, best = means.mean(1) * horizon, means.max(1) * horizon
        limit = np.array([family.frozen_limit_return(t, d) for t, d in zip(instances, data)])
        posterior = np.array([a / (a + b) for a, b in (family.beta_posterior(d) for d in data)])
        states = adapt_instances(adapter, family, tasks, runs_per_task=runs, episodes=1, steps=steps, seed=seed)
        obs = (torch.arange(horizon, dtype=torch.float32) / horizon).view(1, horizon, 1).expand(len(instances), -1, -1)
        print(f"{run}: frozen limit NR {((limit - rand) / (best - rand)).mean():.3f} "
              f"({len(instances)} instances)", flush=True)
        for k in steps:
            with torch.no_grad():
                arms = instance_q(adapter, states[k], layout="task")(obs).argmax(-1).numpy()  # [instance, t]
            nr = (np.take_along_axis(means, arms, 1).sum(1) - rand) / (best - rand)
            print(f"  k={k}: expected NR {nr.mean():.3f}; first arm = the posterior's best "
                  f"{np.mean(arms[:, 0] == posterior.argmax(1)):.2f}; switches arm within the episode "
                  f"{np.mean([len(set(a)) > 1 for a in arms]):.2f}", flush=True)


if __name__ == "__main__":
    main()
