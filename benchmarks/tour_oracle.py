"""Can Q-learning learn the frozen limit's tours when the Q-network is GIVEN the posterior?

On the default gridnav (8 x 8, start at the centre, dense −distance reward, horizon 16), almost
all of context MAML's remaining loss against the frozen information limit sits where the one
random support episode leaves 3+ goals possible (`context_diagnosis.py --run R`: NR 0.56 there
against a limit of 0.96); the adapted context is a point hypothesis and the greedy path goes to
one candidate. This asks the next question without any inference: a DQN whose input is the cell,
t / H and the exact posterior — a 64-cell mask of the goals consistent with the support episode —
trained over the training goals with fresh random support episodes (the task's true goal gives
the rewards), then run greedily (frozen) on the held-out tasks with the very support data `metadqn
evaluate` uses. Reported per posterior size next to the frozen limit: where this oracle-input DQN
reaches the limit, the missing piece is a context that carries the posterior; where it does not,
Q-learning on this data does not find tours and a planner is needed.

    python benchmarks/tour_oracle.py                    # goals of the training split (40 of 63)
    python benchmarks/tour_oracle.py --all-goals        # every goal cell in training (the limit's prior)
    python benchmarks/tour_oracle.py --all-goals --memory   # ... and the cells this episode has visited

With ``--posterior box`` the input holds, instead of the per-cell mask, a summary of the consistent
goals in grid coordinates: their count, mean, bounding box and the sign of their row/column
covariance (a diagonal segment's direction) — a posterior that, like context MAML's learned context,
is a smooth function of where the goals are, so it may carry over to goals never seen in training.

With ``--memory`` the input also holds a 64-cell mask of the cells the episode has visited so far:
the candidates a tour has already ruled out are then in the observation, so a cell's value no longer
averages over the histories that reach it (the thirteenth session's reading of why TD misses tours).

Meant for exploring (benchmarks/RESULTS.md has what it measured).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch import nn

from metadqn import make_family
from metadqn.evaluate import EvalConfig
from metadqn.limits import limit_returns, support_data
from metadqn.stats import normalized
from metadqn.tasks.grid import bfs_distance, successors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1500, help="batches of episodes (each B episodes of H steps)")
    ap.add_argument("--batch-envs", type=int, default=128)
    ap.add_argument("--updates", type=int, default=1, help="DQN updates per env step of the batch")
    ap.add_argument("--all-goals", action="store_true", help="train on every goal cell, not the training split")
    ap.add_argument("--memory", action="store_true", help="the input also holds the cells visited so far")
    ap.add_argument("--on-training-goals", action="store_true",
                    help="evaluate on 20 of the training tasks instead of the held-out ones (in distribution)")
    ap.add_argument("--posterior", choices=("mask", "box"), default="mask",
                    help="the posterior as a 64-cell mask, or summarised in grid coordinates")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    family = make_family("gridnav")
    n, horizon = family.size, family.max_episode_steps
    train, test = family.split(40, 20, seed=0)
    if args.on_training_goals:  # the same protocol on tasks the DQN was trained on
        test = train[:20]
    walls = family.walls(train[0])
    nxt = torch.as_tensor(successors(walls))                                                   # [cell, action]
    cells = [(r, c) for r in range(n) for c in range(n) if (r, c) != family.start_cell()]
    flat = torch.tensor([r * n + c for r, c in cells])                                         # goal index -> cell
    dist = torch.zeros(n * n, n * n)                                                           # [goal cell, cell]
    for r, c in cells:
        dist[r * n + c] = torch.tensor(bfs_distance(walls, (r, c)).reshape(-1), dtype=torch.float32)
    start = family.start_cell()[0] * n + family.start_cell()[1]
    goals = flat if args.all_goals else torch.tensor([t["goal"][0] * n + t["goal"][1] for t in train])

    def posterior_mask(next_cells: torch.Tensor, rewards: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
        """[B, n*n] 1 where a goal cell is consistent with the episodes ([B, T] each)."""
        expect = -dist[flat][:, next_cells] / n                                                 # [G, B, T]
        at = flat[:, None, None] == next_cells[None]
        ok = ((expect - rewards[None]).abs() < 1e-4) & (at == terms[None])
        mask = torch.zeros(next_cells.shape[0], n * n)
        mask[:, flat] = ok.all(-1).T.float()
        return mask

    def random_support(goal: torch.Tensor) -> torch.Tensor:
        """A uniformly random episode from the start for each goal; its posterior mask."""
        b = goal.shape[0]
        pos, alive = torch.full((b,), start), torch.ones(b, dtype=torch.bool)
        nc, rw, tm = [], [], []
        for _ in range(horizon):
            new = nxt[pos, torch.as_tensor(rng.integers(0, 4, b))]
            reached = new == goal
            # steps after the end repeat the last one (consistent for every goal that explains it)
            nc.append(torch.where(alive, new, nc[-1] if nc else new))
            rw.append(torch.where(alive, -dist[goal, new] / n, rw[-1] if rw else -dist[goal, new] / n))
            tm.append(torch.where(alive, reached, tm[-1] if tm else reached))
            pos, alive = torch.where(alive, new, pos), alive & ~reached
        return posterior_mask(torch.stack(nc, 1), torch.stack(rw, 1), torch.stack(tm, 1))

    row, col = (torch.arange(n * n) // n).float() / (n - 1), (torch.arange(n * n) % n).float() / (n - 1)

    def box(mask: torch.Tensor) -> torch.Tensor:
        """[B, 8]: the consistent goals' count / 10, mean row and column, bounding box, covariance."""
        count = mask.sum(1, keepdim=True).clamp(min=1)
        mr, mc = (mask * row).sum(1, keepdim=True) / count, (mask * col).sum(1, keepdim=True) / count
        def extent(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lo = torch.where(mask > 0, x, torch.tensor(2.0)).amin(1, keepdim=True)
            return lo, torch.where(mask > 0, x, torch.tensor(-1.0)).amax(1, keepdim=True)
        (lo_r, hi_r), (lo_c, hi_c) = extent(row), extent(col)
        cov = (mask * (row - mr) * (col - mc)).sum(1, keepdim=True) / count
        return torch.cat((count / 10, mr, mc, lo_r, hi_r, lo_c, hi_c, 4 * cov), 1)

    def posterior(mask: torch.Tensor) -> torch.Tensor:
        """What the DQN reads of the posterior (fixed over an episode: computed once per episode)."""
        return mask if args.posterior == "mask" else box(mask)

    def observe(pos: torch.Tensor, t: torch.Tensor, post: torch.Tensor, visited: torch.Tensor) -> torch.Tensor:
        rc = torch.stack((pos // n, pos % n), 1).float() / (n - 1)
        return torch.cat((rc, (t.float() / horizon)[:, None], post, *((visited,) if args.memory else ())), 1)

    def visit(visited: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        out = visited.clone()
        out[torch.arange(len(pos)), pos] = 1.0
        return out

    width = 3 + (n * n if args.posterior == "mask" else 8) + (n * n if args.memory else 0)
    net = nn.Sequential(nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    cap, size, ptr = 200_000, 0, 0
    buf = {"o": torch.zeros(cap, width), "a": torch.zeros(cap, dtype=torch.long), "r": torch.zeros(cap),
           "o2": torch.zeros(cap, width), "d": torch.zeros(cap)}
    t0, updates = time.time(), 0
    for rnd in range(args.rounds):
        eps = max(0.05, 1.0 - rnd / (0.5 * args.rounds))
        b = args.batch_envs
        goal = goals[torch.as_tensor(rng.integers(0, len(goals), b))]
        post = posterior(random_support(goal))
        pos, t = torch.full((b,), start), torch.zeros(b, dtype=torch.long)
        alive = torch.ones(b, dtype=torch.bool)
        visited = visit(torch.zeros(b, n * n), pos)
        for step in range(horizon):
            obs = observe(pos, t, post, visited)
            with torch.no_grad():
                greedy = net(obs).argmax(1)
            a = torch.where(torch.as_tensor(rng.random(b)) < eps, torch.as_tensor(rng.integers(0, 4, b)), greedy)
            new = nxt[pos, a]
            r = -dist[goal, new] / n
            done = new == goal
            visited2 = visit(visited, new)
            obs2 = observe(new, t + 1, post, visited2)
            idx = alive.nonzero().squeeze(1)
            k = len(idx)
            slots = (ptr + torch.arange(k)) % cap
            for name, value in (("o", obs), ("a", a), ("r", r), ("o2", obs2), ("d", done.float())):
                buf[name][slots] = value[idx]
            ptr, size = (ptr + k) % cap, min(cap, size + k)
            pos, t, alive, visited = new, t + 1, alive & ~done, visited2
            for _ in range(args.updates):
                j = torch.as_tensor(rng.integers(0, size, 512))
                o, aa, rr, o2, d = (buf[x][j] for x in ("o", "a", "r", "o2", "d"))
                with torch.no_grad():  # Double DQN; the horizon truncates (t / H in the input)
                    a2 = net(o2).argmax(1, keepdim=True)
                    last = o2[:, 2] >= 1.0 - 1e-6
                    y = rr + 0.99 * (1 - d) * (~last).float() * target(o2).gather(1, a2).squeeze(1)
                q = net(o).gather(1, aa[:, None]).squeeze(1)
                loss = nn.functional.smooth_l1_loss(q, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                updates += 1
                if updates % 500 == 0:
                    target.load_state_dict(net.state_dict())
        if (rnd + 1) % max(1, args.rounds // 10) == 0:
            print(f"round {rnd + 1}: eps {eps:.2f}, loss {loss.item():.4f}, {time.time() - t0:.0f} s", flush=True)

    # held-out tasks, the evaluation's own support data (5 per task), frozen greedy episodes
    seed, runs = EvalConfig().data_seed, 5
    instances, data = support_data(family, test, runs_per_task=runs, episodes=1, seed=seed)
    nc = torch.as_tensor(np.stack([family.cells_of(d["next_obs"]) for d in data]))
    mask = posterior_mask(nc[..., 0] * n + nc[..., 1], torch.as_tensor(np.stack([d["reward"] for d in data])).float(),
                          torch.as_tensor(np.stack([d["terminated"] for d in data])).bool())
    goal = torch.tensor([t["goal"][0] * n + t["goal"][1] for t in instances])
    pos, t = torch.full((len(goal),), start), torch.zeros(len(goal), dtype=torch.long)
    alive, ret = torch.ones(len(goal), dtype=torch.bool), torch.zeros(len(goal))
    seen = torch.zeros(len(goal), n * n)
    visited = visit(torch.zeros(len(goal), n * n), pos)
    post = posterior(mask)
    with torch.no_grad():
        for _ in range(horizon):
            new = nxt[pos, net(observe(pos, t, post, visited)).argmax(1)]
            visited = visit(visited, new)
            ret += torch.where(alive, -dist[goal, new] / n, torch.zeros(()))
            seen[torch.arange(len(goal)), new] = torch.where(alive, 1.0, seen[torch.arange(len(goal)), new])
            alive = alive & (new != goal)
            pos, t = new, t + 1
    visited = (seen * mask).sum(1)
    rand = np.array([family.random_return(x) for x in test])
    best = np.array([family.oracle_return(x) for x in test])
    nr = normalized(ret.numpy().reshape(len(test), runs), rand, best).reshape(-1)
    lim = normalized(limit_returns(family, test, kind="frozen", runs_per_task=runs, episodes=1, seed=seed),
                     rand, best).reshape(-1)
    sizes = mask.sum(1).numpy()
    print(f"goals in training: {len(goals)}; posterior: {args.posterior}; memory: {args.memory}; "
          f"evaluated on {'training' if args.on_training_goals else 'held-out'} goals; "
          f"{args.rounds} rounds x {args.batch_envs} episodes, {updates} updates, "
          f"{time.time() - t0:.0f} s; frozen NR {nr.mean():.3f} (limit {lim.mean():.3f}, "
          f"{nr.mean() / lim.mean():.0%})")
    print("| goals consistent with the support episode | instances | NR | frozen limit | consistent goals the path visits |\n"
          "|---|---|---|---|---|")
    for label, m in (("1", sizes == 1), ("2", sizes == 2), ("3+", sizes >= 3)):
        if m.any():
            print(f"| {label} | {m.sum()} | {nr[m].mean():.2f} | {lim[m].mean():.2f} | {visited.numpy()[m].mean():.2f} |")


if __name__ == "__main__":
    main()
