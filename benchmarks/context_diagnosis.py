"""Where does context MAML (or the encoder) lose NR on gridnav? Meta-trains one setting, then
on held-out tasks (20 × 5 runs, one random support episode, k context steps) reports NR grouped
by the size of the exact goal posterior given the support data (1 = the episode identifies the
goal), and how often the adapted context's reward model points at the true goal ("decoded":
the goal whose −distance map best matches the model's predicted rewards).

    python benchmarks/context_diagnosis.py --iterations 200 --set context_starts=8
    python benchmarks/context_diagnosis.py --iterations 200 --cue-steps 16   # goal visible: Q-learning alone
    python benchmarks/context_diagnosis.py --iterations 200 --train-tasks     # held-out vs training goals
    python benchmarks/context_diagnosis.py --run DIR --online --warm   # a trained run, adapting online
    python benchmarks/context_diagnosis.py --run DIR --steps 5         # a trained run, frozen after k steps
    python benchmarks/context_diagnosis.py --run DIR --steps 10 --prior  # held-out against training goals

``--run DIR`` alone: the run's held-out tasks with the evaluation's data seed, frozen after k
steps (default: the run's own K), grouped the same way, with the frozen information limit of each
group (NR of the best frozen policy given the same data, as `metadqn evaluate` computes it), how often the greedy path of
Q(s, a; c) from the start reaches the true goal and the decoded one (a code decoded right whose
path stops short of the goal is the Q-function's loss, not the inference's), whether the paths that
miss the goal loop, and how many of the goals consistent with the episode a path visits (the
frozen limit's plan tours them; a Markov policy that reaches a wrong candidate cycles there).

``--online``: NR of one greedy episode that re-adapts after every env step (as ``metadqn
evaluate --online``; ``--warm`` as ``--online-warm``) beside the online information limit,
grouped the same way, on the run's held-out tasks with the evaluation's data seed.

``--prior``: the same run on its held-out tasks and on 20 of its training tasks (fresh support
episodes, the evaluation's data seed), each beside the frozen limit under the family's prior
(uniform over the goal cells, what `metadqn evaluate` uses) and, on the training tasks, under the
prior the learner was trained on (the training goals only: the Bayes-optimal frozen policy for the
task distribution it saw). A learner can only learn the prior it is trained on; where held-out and
training tasks sit at the same fraction of their limits, the held-out gap is not a mismatch of
priors. Also: how often the adapted context decodes to a training goal where the episode leaves
two or more goals possible, against the training goals' share of those candidates.

Meant for exploring (benchmarks/RESULTS.md has what it measured); the protocol with baselines
and CIs is `metadqn evaluate`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from metadqn import MAMLDQN, make_family
from metadqn.families import TimeFamily
from metadqn.adaptation import adapt_instances, new_task_data, online_curve
from metadqn.evaluate import EvalConfig
from metadqn.limits import limit_returns
from metadqn.stats import normalized
from metadqn.tasks.grid import bfs_distance, successors


def windows(rows: torch.Tensor, family, t: float = 0.0) -> torch.Tensor:
    """Observations ``rows [N, D]`` as ``family`` shows them: as they are, for a ``with_time``
    view with t / H = ``t`` appended, or for a ``with_history`` family as windows
    ``[N, W, D + 1]`` holding each row as the only step."""
    if isinstance(family, TimeFamily):
        return torch.cat((rows, torch.full((rows.shape[0], 1), float(t))), dim=1)
    return rows if not hasattr(family, "window") else window_of(rows, family.window)


def window_of(rows: torch.Tensor, window: int, history: torch.Tensor | None = None) -> torch.Tensor:
    """Windows ``[N, window, D + 1]`` (with_history's layout: oldest first, a trailing 1 on every
    real step, zeros before the episode) holding each row of ``rows [N, D]`` as the newest step
    after ``history`` (earlier rows ``[H, D]`` shared by all, oldest first; default none)."""
    past = [] if history is None or window == 1 else list(history[-(window - 1):])
    steps = torch.zeros(rows.shape[0], window, rows.shape[1] + 1)
    for i, row in enumerate([*past, rows], start=window - 1 - len(past)):  # oldest first, the newest last
        steps[:, i, :-1], steps[:, i, -1] = row, 1.0
    return steps


def base_of(family):
    """The family whose grid the diagnosis reads (a with_history family's base)."""
    return getattr(family, "base", family)


def model_context(states: dict) -> torch.Tensor:
    """The context the model head reads: the best end where the Q-network reads a pool of ends
    (``context_pool``), else the Q-network's own context."""
    return states.get("end", states["context"])


def decoded_goals(learner: MAMLDQN, contexts: torch.Tensor, size: int) -> list[tuple[int, int]]:
    """For each context, the goal whose reward map −d(s′, g)/N best matches the model head's
    predicted reward of every (cell, action) of an empty grid."""
    walls = np.zeros((size, size), bool)
    cells = torch.tensor([[r / (size - 1), c / (size - 1)] for r in range(size) for c in range(size)])
    nxt = successors(walls)                                                  # [cell, action]
    start = (size // 2, size // 2)
    goals = [(r, c) for r in range(size) for c in range(size) if (r, c) != start]
    dist = np.stack([bfs_distance(walls, g).reshape(-1) for g in goals]) / size
    params = {k: v.detach() for k, v in learner.params.items()}
    out = []
    with torch.no_grad():
        for c in contexts:
            err = np.zeros(len(goals))
            for a in range(4):
                r_hat, _ = learner.model.predict(params, windows(cells, learner.family), torch.full((len(cells),), a), c,
                                                 windows(cells[torch.as_tensor(nxt[:, a])], learner.family,
                                                         t=1 / learner.family.max_episode_steps))  # from t = 0
                err += ((r_hat.numpy()[None, :] + dist[:, nxt[:, a]]) ** 2).mean(1)
            out.append(goals[int(err.argmin())])
    return out


def posteriors(family, tasks, runs: int, seed: int) -> list[list[tuple[int, int]]]:
    """The goals consistent with each instance's random support episode (task-major)."""
    buf, _ = new_task_data(family, tasks, runs_per_task=runs, episodes=1, adapter=None, seed=seed)
    data = {n: getattr(buf, n)[:, :family.max_episode_steps, 0].numpy()
            for n in ("obs", "action", "reward", "next_obs", "terminated")}
    if hasattr(family, "newest_steps"):  # a with_history family: each window's newest step
        data = family.newest_steps(data)
    base = base_of(family)
    return [base.goal_posterior(tasks[i // runs], {n: v[i] for n, v in data.items()}) for i in range(len(tasks) * runs)]


def posterior_sizes(family, tasks, runs: int, seed: int) -> np.ndarray:
    """How many goals are consistent with each instance's random support episode (task-major)."""
    return np.array([len(p) for p in posteriors(family, tasks, runs, seed)])


def references(family, tasks, runs: int, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random and optimal returns per task, and the ``kind`` information limit's NR per instance
    given one random support episode (task-major), in the family the learner acts in: a wrapped
    family's limits are its base's on that family's own support episodes, as `metadqn evaluate` has them."""
    rand = np.array([family.random_return(t) for t in tasks])
    best = np.array([family.oracle_return(t) for t in tasks])
    lim = normalized(limit_returns(family, tasks, kind=kind, runs_per_task=runs, episodes=1, seed=seed), rand, best)
    return rand, best, lim.reshape(-1)


def online_report(run: str, warm: bool, steps: int) -> None:
    learner = MAMLDQN.load(run)
    family, tasks, runs = learner.family, learner.test_tasks, 5
    seed = EvalConfig().data_seed  # the evaluation's own data
    adapter = learner.adapter()
    k = steps or adapter.default_steps
    t0 = time.perf_counter()
    ret, ms = online_curve(adapter, family, tasks, runs_per_task=runs, episodes=1, steps=k, seed=seed, warm=warm)
    rand, best, lim = references(family, tasks, runs, seed, "online")
    nr = normalized(ret.numpy(), rand, best).reshape(-1)
    sizes = posterior_sizes(family, tasks, runs, seed)
    print(f"{run} online warm={warm} k={k}: NR {nr.mean():.2f} (limit {lim.mean():.2f}), {ms:.1f} ms per env step, "
          f"{time.perf_counter() - t0:.0f} s")
    print("| goals consistent with the support episode | instances | online NR | online limit | "
          "instances below 0.9 |\n|---|---|---|---|---|")
    for groups, label in (((1,), "1"), ((2,), "2"), (tuple(range(3, 64)), "3+")):
        m = np.isin(sizes, groups)
        if m.any():
            print(f"| {label} | {m.sum()} | {nr[m].mean():.2f} | {lim[m].mean():.2f} | {(nr[m] < 0.9).sum()} |")


def greedy_paths(adapter, states: dict, goals: list[tuple[int, int]], size: int, horizon: int,
                 window: int = 0, timed: bool = False) -> list[list]:
    """The cells the greedy policy of each adapted state visits from the centre of an empty
    grid, until it reaches that instance's goal or the horizon (``window`` > 0: the policy
    reads windows of the episode's last ``window`` positions, as a with_history family shows;
    ``timed``: it reads t / H too, as a with_time view shows)."""
    nxt = successors(np.zeros((size, size), bool))
    paths = []
    for i, goal in enumerate(goals):
        state = {k: v[i] for k, v in states.items()}
        cell, path, seen = (size // 2) * size + size // 2, [], []
        for step in range(horizon):
            obs = torch.tensor([[cell // size / (size - 1), cell % size / (size - 1)]])
            if timed:
                obs = torch.cat((obs, torch.tensor([[step / horizon]])), dim=1)
            if window:
                obs = window_of(obs, window, torch.stack(seen) if seen else None)
                seen.append(obs[0, -1, :-1])
            with torch.no_grad():
                cell = int(nxt[cell, int(adapter.q_values(state, obs).argmax(-1))])
            path.append((cell // size, cell % size))
            if path[-1] == goal:
                break
        paths.append(path)
    return paths


def frozen_report(run: str, steps: int) -> None:
    learner = MAMLDQN.load(run)
    family, tasks, runs = learner.family, learner.test_tasks, 5
    seed = EvalConfig().data_seed
    adapter = learner.adapter()
    k = steps or adapter.default_steps
    nr = learner.adaptation_returns(tasks, steps=(k,), runs=runs, seed=seed)["nr"][k].numpy().reshape(-1)
    _, _, lim = references(family, tasks, runs, seed, "frozen")
    posts = posteriors(family, tasks, runs, seed)
    sizes = np.array([len(p) for p in posts])
    states = adapt_instances(adapter, family, tasks, runs_per_task=runs, episodes=1, steps=(k,), seed=seed)[k]
    size = base_of(family).size
    decoded = decoded_goals(learner, model_context(states), size)
    true = [tuple(tasks[i // runs]["goal"]) for i in range(len(decoded))]
    paths = greedy_paths(adapter, states, true, size, family.max_episode_steps, getattr(family, "window", 0),
                         timed=isinstance(family, TimeFamily))
    right = np.array([d == t for d, t in zip(decoded, true)])
    reach = np.array([t in p for t, p in zip(true, paths)])
    reach_decoded = np.array([d in p for d, p in zip(decoded, paths)])
    # A path that misses the goal: does it come back to a cell it left (a loop a Markov policy
    # cannot leave), and how many of the consistent goals did it visit before that?
    loops = np.array([len(set(p)) < len(p) for p in paths])
    visited = np.array([len({c for c in p if c in set(g)}) for p, g in zip(paths, posts)])
    print(f"{run} frozen k={k}: NR {nr.mean():.2f} (frozen limit {lim.mean():.2f})")
    print("| goals consistent with the support episode | instances | NR | frozen limit | decoded right | path reaches the goal | "
          "path reaches the decoded goal | decoded right, goal not reached | goal not reached: path loops | "
          "consistent goals the path visits |\n|---|---|---|---|---|---|---|---|---|---|")
    for groups, label in (((1,), "1"), ((2,), "2"), (tuple(range(3, 64)), "3+")):
        m = np.isin(sizes, groups)
        if m.any():
            print(f"| {label} | {m.sum()} | {nr[m].mean():.2f} | {lim[m].mean():.2f} | {right[m].mean():.2f} | {reach[m].mean():.2f} | "
                  f"{reach_decoded[m].mean():.2f} | {(right & ~reach)[m].sum()} | {(loops & ~reach)[m].sum()} "
                  f"of {(~reach)[m].sum()} | {visited[m].mean():.2f} |")


def training_prior_limit(family, tasks, train_goals: set, runs: int, seed: int, rand: np.ndarray,
                         best: np.ndarray) -> np.ndarray:
    """The frozen limit's NR per instance (task-major) under the training goals' prior — the goals
    consistent with the support episode that are training goals — for ``tasks`` whose goals are all
    among ``train_goals`` (the Bayes-optimal frozen policy for the distribution a learner saw);
    ``rand`` and ``best``: the tasks' random and optimal returns (:func:`references`)."""
    base = base_of(family)
    every = type(base).goal_posterior
    base.goal_posterior = lambda task, data: [g for g in every(base, task, data) if g in train_goals]
    try:
        returns = limit_returns(family, tasks, kind="frozen", runs_per_task=runs, episodes=1, seed=seed)
    finally:
        del base.goal_posterior
    return normalized(returns, rand, best).reshape(-1)


def prior_report(run: str, steps: int) -> None:
    learner = MAMLDQN.load(run)
    family, runs, seed = learner.family, 5, EvalConfig().data_seed
    adapter = learner.adapter()
    k = steps or adapter.default_steps
    base = base_of(family)
    train_goals = {tuple(t["goal"]) for t in learner.train_tasks}
    print(f"{run} frozen k={k}: {len(train_goals)} training goals")
    print("| tasks | goals consistent with the support episode | instances | NR | frozen limit, the family's prior | "
          "fraction | frozen limit, the training goals' prior | fraction |\n|---|---|---|---|---|---|---|---|")
    for name, tasks in (("held-out", learner.test_tasks), ("training (20)", learner.train_tasks[:20])):
        nr = learner.adaptation_returns(tasks, steps=(k,), runs=runs, seed=seed)["nr"][k].numpy().reshape(-1)
        rand, best, lim = references(family, tasks, runs, seed, "frozen")
        own = (training_prior_limit(family, tasks, train_goals, runs, seed, rand, best) if name.startswith("training")
               else np.full_like(lim, np.nan))  # (held-out: the true goal is not a training goal)
        posts = posteriors(family, tasks, runs, seed)
        sizes = np.array([len(p) for p in posts])
        for label, m in (("all", sizes > 0), ("1", sizes == 1), ("2", sizes == 2), ("3+", sizes >= 3)):
            if m.any():
                o = own[m].mean()
                print(f"| {name} | {label} | {m.sum()} | {nr[m].mean():.2f} | {lim[m].mean():.2f} | {nr[m].mean() / lim[m].mean():.0%} | "
                      + ("— | — |" if np.isnan(o) else f"{o:.2f} | {nr[m].mean() / o:.0%} |"))
        if name == "held-out":
            states = adapt_instances(adapter, family, tasks, runs_per_task=runs, episodes=1, steps=(k,), seed=seed)[k]
            decoded = decoded_goals(learner, model_context(states), base.size)
            for label, pick in (("2", lambda n: n == 2), ("3+", lambda n: n >= 3)):
                idx = [i for i, p in enumerate(posts) if pick(len(p))]
                if idx:
                    share = np.mean([np.mean([tuple(g) in train_goals for g in posts[i]]) for i in idx])
                    print(f"held-out, {label} goals possible ({len(idx)}): the context decodes to a training goal on "
                          f"{np.mean([decoded[i] in train_goals for i in idx]):.0%} (training goals are {share:.0%} of "
                          f"the candidates), to the true goal on {np.mean([decoded[i] == tuple(tasks[i // runs]['goal']) for i in idx]):.0%} "
                          f"(a uniform pick: {np.mean([1 / len(posts[i]) for i in idx]):.0%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--steps", type=int, default=None,
                    help="context steps k at test time (default: 10; with --run, the run's own K)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cue-steps", type=int, default=0, help="show the goal in the first N observations")
    ap.add_argument("--train-tasks", action="store_true", help="also report NR on 20 training tasks")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="MAMLDQN override (repeatable)")
    ap.add_argument("--run", default=None, help="diagnose this trained run instead of training one")
    ap.add_argument("--online", action="store_true", help="adapt online during the evaluation episode")
    ap.add_argument("--warm", action="store_true", help="online: the last re-adaptation's end competes too")
    ap.add_argument("--prior", action="store_true", help="held-out against training tasks, each beside its limit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if (args.online or args.prior) and not args.run:
        ap.error("--online and --prior diagnose a trained run: give --run DIR with them")
    if args.online and args.prior:
        ap.error("--online and --prior are two reports: give one")
    if args.run:
        steps = args.steps or 0  # 0: the run's own K
        if args.prior:
            prior_report(args.run, steps)
        else:
            online_report(args.run, args.warm, steps) if args.online else frozen_report(args.run, steps)
        return
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    family = make_family("gridnav", cue_steps=args.cue_steps) if args.cue_steps else make_family("gridnav")
    train, test = family.split(40, 20, seed=0)
    t0 = time.perf_counter()
    learner = MAMLDQN(family, **{"algo": "context", "eval_every": 0, "checkpoint_every": 0,
                                 "iterations": args.iterations, "seed": args.seed, **extra})
    learner.meta_train(train, progress=False)
    seconds = time.perf_counter() - t0
    k, runs = args.steps or 10, 5
    nr = learner.adaptation_returns(test, steps=(k,), runs=runs, seed=5)["nr"][k].numpy().reshape(-1)
    print(f"{extra} cue_steps={args.cue_steps} seed={args.seed}: {args.iterations} iterations in {seconds:.0f} s; "
          f"held-out NR at k={k}: {nr.mean():.2f}")
    if args.train_tasks:
        tr = learner.adaptation_returns(train[:20], steps=(k,), runs=runs, seed=5)["nr"][k]
        print(f"  training tasks (20 of them): NR at k={k}: {float(tr.mean()):.2f}")
    if args.cue_steps:
        return
    sizes = posterior_sizes(family, test, runs, seed=5)
    contexts = adapt_instances(learner.adapter(), learner.family, test, runs_per_task=runs, episodes=1, steps=(k,),
                               seed=5)[k]
    contexts = model_context(contexts)
    hit = np.array([g == tuple(test[i // runs]["goal"])
                    for i, g in enumerate(decoded_goals(learner, contexts, family.size))])
    print(f"  decoded the true goal: {hit.mean():.2f}; NR where decoded right {nr[hit].mean():.2f}, "
          f"wrong {nr[~hit].mean() if (~hit).any() else float('nan'):.2f}")
    print("| goals consistent with the episode | instances | NR | decoded right |\n|---|---|---|---|")
    for groups, label in (((1,), "1"), ((2,), "2"), (tuple(range(3, 64)), "3+")):
        m = np.isin(sizes, groups)
        if m.any():
            print(f"| {label} | {m.sum()} | {nr[m].mean():.2f} | {hit[m].mean():.2f} |")


if __name__ == "__main__":
    main()
