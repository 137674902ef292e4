"""Does a Q-network that reads a SET of adapted contexts — a particle posterior — tour the goals
that one random support episode leaves possible?

Context MAML's adapted context is one point (one basin of the support model loss), and on the
default gridnav nearly all of its loss against the frozen information limit sits where 3+ goals
remain possible (`context_diagnosis.py --run R`). Here the run's model head and learned starts
are kept frozen; each support episode is descended from the run's 8 learned starts plus
``--starts`` random ones (the starts' mean + ``--sigma`` × their spread × N(0, 1)), ``--steps``
context steps each, and the ``--particles`` ends with the lowest support loss are kept, weighted
1 where their loss is within (1 + ``--tol``) × the best end's (+ 1e-4), else 0. A new Q-network
reads them as a set — Q(s, a; C) = ψ(s, mean and max over the weighted particles of φ(s, c_j)),
s = (row, column, t / H) — and is trained by Double DQN on the run's training goals (fresh support
episodes every round with ``--pool 0``, else a pool of ``--pool`` of them drawn once), then run
greedily and frozen on the run's held-out tasks and on 20 of its training tasks with the
evaluation's support data. Reported per posterior size next to the frozen limit (on training
tasks also under the training goals' prior), with the consistent goals the path visits and the
share of them some weighted particle decodes to. ``--particles 1`` is the same pipeline with one
point (the best of all the starts).

    python benchmarks/tour_particles.py RUN --rounds 20 --pool 0     # fresh support every round
    python benchmarks/tour_particles.py RUN --rounds 600              # a pool of 4,096 support episodes

RUN: a trained gridnav context MAML run (default options). Meant for exploring
(benchmarks/RESULTS.md has what it measured).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
import context_diagnosis as d  # noqa: E402  (the diagnosis's posterior, decoding and references)
from metadqn import MAMLDQN  # noqa: E402
from metadqn.adaptation import new_task_data, sample_support  # noqa: E402
from metadqn.evaluate import EvalConfig  # noqa: E402
from metadqn.stats import normalized  # noqa: E402
from metadqn.tasks.grid import bfs_distance, successors  # noqa: E402


class SetQ(nn.Module):
    """Q(s, a; C) = ψ(s, weighted mean and max over the particles c_j of φ(s, c_j))."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(3 + dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.psi = nn.Sequential(nn.Linear(3 + 2 * hidden, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 4))

    def forward(self, x: torch.Tensor, particles: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        z = self.phi(torch.cat((x[:, None].expand(-1, particles.shape[1], -1), particles), -1))
        mean = (w[..., None] * z).sum(1) / w.sum(1, keepdim=True)
        top = (z - (1 - w[..., None]) * 1e4).max(1).values
        return self.psi(torch.cat((x, mean, top), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a trained gridnav context MAML run")
    ap.add_argument("--rounds", type=int, default=1500, help="batches of episodes (each --batch-envs episodes)")
    ap.add_argument("--batch-envs", type=int, default=128)
    ap.add_argument("--particles", type=int, default=16, help="lowest-loss ends the Q-network reads")
    ap.add_argument("--starts", type=int, default=120, help="random starts besides the run's learned ones")
    ap.add_argument("--sigma", type=float, default=1.0, help="random starts' spread, in the learned starts' spread")
    ap.add_argument("--steps", type=int, default=10, help="context steps from every start")
    ap.add_argument("--tol", type=float, default=1.0, help="weight 1 within (1 + tol) x the best loss (+ 1e-4)")
    ap.add_argument("--pool", type=int, default=4096, help="support episodes drawn once (0: fresh every round)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    run = MAMLDQN.load(args.run)
    fam, adapter = run.family, run.adapter().detached()
    base = d.base_of(fam)
    n, horizon = base.size, fam.max_episode_steps
    train, test = run.train_tasks, run.test_tasks
    walls = base.walls(train[0])
    nxt = torch.as_tensor(successors(walls))                                                   # [cell, action]
    start = base.start_cell()[0] * n + base.start_cell()[1]
    dist = torch.zeros(n * n, n * n)                                                           # [goal cell, cell]
    for r in range(n):
        for c in range(n):
            dist[r * n + c] = torch.tensor(bfs_distance(walls, (r, c)).reshape(-1), dtype=torch.float32)
    learned = adapter._with_starts(adapter.params["context"])
    dim, P = learned.shape[1], args.particles
    g = torch.Generator().manual_seed(123)
    cand = torch.cat((learned, learned.mean(0) + args.sigma * learned.std(0) * torch.randn(args.starts, dim, generator=g)))

    def particles(tasks, runs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``P`` lowest-loss ends ``[instance, P, dim]`` of one support episode per instance, and
        their weights ``[instance, P]``."""
        buf, gen = new_task_data(fam, tasks, runs_per_task=runs, episodes=1, adapter=adapter, seed=seed)
        sup = sample_support(buf, adapter.support, episodes=1, generator=gen)
        with torch.no_grad():
            ends, losses = vmap(lambda b: adapter._ends_and_losses(cand, b, args.steps))(sup)
        order = losses.argsort(1)[:, :P]
        ends = torch.gather(ends, 1, order[..., None].expand(-1, -1, dim))
        losses = torch.gather(losses, 1, order)
        return ends, (losses <= losses[:, :1] * (1 + args.tol) + 1e-4).float()

    def observe(pos: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.stack((pos // n, pos % n, t), 1).float() / torch.tensor([n - 1, n - 1, horizon])

    def goal_cell(task) -> int:
        return task["goal"][0] * n + task["goal"][1]

    net = SetQ(dim)
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    cap, size, ptr = 200_000, 0, 0
    buf = {"o": torch.zeros(cap, 3), "a": torch.zeros(cap, dtype=torch.long), "r": torch.zeros(cap),
           "o2": torch.zeros(cap, 3), "d": torch.zeros(cap), "C": torch.zeros(cap, P, dim), "w": torch.zeros(cap, P)}
    t0, updates, tp = time.time(), 0, 0.0
    if args.pool:
        pool_tasks = [train[i] for i in rng.integers(0, len(train), args.pool)]
        pool = [particles(pool_tasks[i:i + 256], 1, 10_000 + i + 100_000 * args.seed) for i in range(0, args.pool, 256)]
        pool_C, pool_w = torch.cat([p[0] for p in pool]), torch.cat([p[1] for p in pool])
        pool_goal = torch.tensor([goal_cell(t) for t in pool_tasks])
        print(f"pool of {args.pool} support episodes: {time.time() - t0:.0f} s", flush=True)
    for rnd in range(args.rounds):
        eps = max(0.05, 1.0 - rnd / (0.5 * args.rounds))
        b = args.batch_envs
        if args.pool:
            pick = torch.as_tensor(rng.integers(0, args.pool, b))
            goal, C, w = pool_goal[pick], pool_C[pick], pool_w[pick]
        else:  # fresh support episodes every round
            tasks = [train[i] for i in rng.integers(0, len(train), b)]
            goal = torch.tensor([goal_cell(t) for t in tasks])
            t1 = time.time()
            C, w = particles(tasks, 1, 10_000 + rnd + 100_000 * args.seed)
            tp += time.time() - t1
        pos, t = torch.full((b,), start), torch.zeros(b, dtype=torch.long)
        alive = torch.ones(b, dtype=torch.bool)
        for _ in range(horizon):
            obs = observe(pos, t)
            with torch.no_grad():
                greedy = net(obs, C, w).argmax(1)
            a = torch.where(torch.as_tensor(rng.random(b)) < eps, torch.as_tensor(rng.integers(0, 4, b)), greedy)
            new = nxt[pos, a]
            r, done = -dist[goal, new] / n, new == goal
            obs2 = observe(new, t + 1)
            idx = alive.nonzero().squeeze(1)
            slots = (ptr + torch.arange(len(idx))) % cap
            for name, value in (("o", obs), ("a", a), ("r", r), ("o2", obs2), ("d", done.float()), ("C", C), ("w", w)):
                buf[name][slots] = value[idx]
            ptr, size = (ptr + len(idx)) % cap, min(cap, size + len(idx))
            pos, t, alive = new, t + 1, alive & ~done
            j = torch.as_tensor(rng.integers(0, size, 512))
            o, aa, rr, o2, dd, CC, ww = (buf[x][j] for x in ("o", "a", "r", "o2", "d", "C", "w"))
            with torch.no_grad():  # Double DQN; the horizon truncates (t / H in the input)
                a2 = net(o2, CC, ww).argmax(1, keepdim=True)
                last = o2[:, 2] >= 1.0 - 1e-6
                y = rr + 0.99 * (1 - dd) * (~last).float() * target(o2, CC, ww).gather(1, a2).squeeze(1)
            loss = nn.functional.smooth_l1_loss(net(o, CC, ww).gather(1, aa[:, None]).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            updates += 1
            if updates % 500 == 0:
                target.load_state_dict(net.state_dict())
        if (rnd + 1) % max(1, args.rounds // 10) == 0:
            print(f"round {rnd + 1}: eps {eps:.2f}, loss {loss.item():.4f}, {time.time() - t0:.0f} s "
                  f"(particles {tp:.0f} s), near-best {w.sum(1).mean():.1f}", flush=True)

    seed, runs = EvalConfig().data_seed, 5
    train_goals = {tuple(t["goal"]) for t in train}
    print(f"P={P} starts={len(cand)} sigma={args.sigma} rounds={args.rounds} pool={args.pool}: "
          f"trained in {time.time() - t0:.0f} s")
    print("| tasks | goals consistent with the support episode | instances | NR | frozen limit | limit, training goals' "
          "prior | consistent goals the path visits | weighted particles | consistent goals decoded |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for label, tasks in (("held-out", test), ("training (20)", train[:20])):
        C, w = particles(tasks, runs, seed)
        posts = d.posteriors(fam, tasks, runs, seed)
        sizes = np.array([len(p) for p in posts])
        goal = torch.tensor([goal_cell(t) for t in tasks for _ in range(runs)])
        pos, t = torch.full((len(goal),), start), torch.zeros(len(goal), dtype=torch.long)
        alive, ret = torch.ones(len(goal), dtype=torch.bool), torch.zeros(len(goal))
        mask, seen = torch.zeros(len(goal), n * n), torch.zeros(len(goal), n * n)
        for i, p in enumerate(posts):
            for r_, c_ in p:
                mask[i, r_ * n + c_] = 1
        with torch.no_grad():
            for _ in range(horizon):
                new = nxt[pos, net(observe(pos, t), C, w).argmax(1)]
                ret += torch.where(alive, -dist[goal, new] / n, torch.zeros(()))
                seen[torch.arange(len(goal)), new] = torch.where(alive, 1.0, seen[torch.arange(len(goal)), new])
                alive = alive & (new != goal)
                pos, t = new, t + 1
        visited = (seen * mask).sum(1).numpy()
        cover = np.array([len(set(d.decoded_goals(run, C[i][w[i] > 0], n)) & set(map(tuple, posts[i]))) / len(posts[i])
                          for i in range(len(goal))])
        rand, best, lim = d.references(fam, tasks, runs, seed, "frozen")
        nr = normalized(ret.numpy().reshape(len(tasks), runs), rand, best).reshape(-1)
        own = (d.training_prior_limit(fam, tasks, train_goals, runs, seed, rand, best) if label.startswith("training")
               else np.full_like(lim, np.nan))
        for group, m in (("all", sizes > 0), ("1", sizes == 1), ("2", sizes == 2), ("3+", sizes >= 3)):
            print(f"| {label} | {group} | {m.sum()} | {nr[m].mean():.3f} | {lim[m].mean():.2f} | "
                  + ("— |" if np.isnan(own[m]).all() else f"{own[m].mean():.2f} |")
                  + f" {visited[m].mean():.2f} | {w.sum(1).numpy()[m].mean():.1f} | {cover[m].mean():.2f} |", flush=True)


if __name__ == "__main__":
    main()
