"""gridnav's information limit: the best any policy could do on a task given the support
data, computed exactly (see :mod:`metadqn.limits`).

The goal posterior is exact because rewards and terminations are deterministic given the
goal. The best frozen policy is the best open-loop path (the environment is deterministic and
the policy sees only its position), by dynamic programming over (cell, posterior goals
already reached); the online limit is the Bayes-adaptive policy, by dynamic programming over
(step, cell, belief). The best frozen policy that reads only its current cell (a greedy
Q(s, a; c) with c fixed) is found by branch and bound over the paths such a map can follow —
a reference for what a memoryless Q-network could reach, not an information limit. All three
are checked against brute force in ``tests/test_limits.py``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .base import Task
from .grid import bfs_distance, successors


class GridNavLimits:
    """Mixed into :class:`~metadqn.tasks.gridnav.GridNavFamily` (uses its size, walls, start,
    reward and horizon)."""

    size: int
    reward: str
    cue_steps: int
    max_episode_steps: int
    _online_values: dict[bytes, dict[Any, Any]]

    MAX_LIMIT_GOALS = 12  # posterior sizes above this make the exact plan too costly (2^G masks)

    def cells_of(self, obs: np.ndarray) -> np.ndarray:
        """The agent's cells ``[T, 2]`` (row, column) in observations ``[T, obs_dim]``: read off
        the first two coordinates (scaled to [0, 1]); an image family reads its agent channel."""
        return np.rint(obs[:, :2] * (self.size - 1)).astype(int)

    def goal_posterior(self, task: Task, data: Mapping[str, np.ndarray]) -> list[tuple[int, int]]:
        """The goals consistent with ``data`` (rewards and terminations are deterministic given
        the goal), under the prior: uniform over the free cells of the goal range except the
        start. The layout is known (the agent sees the walls)."""
        walls, n = self.walls(task), self.size
        goal = self.param("goal")
        cells = [(r, c) for r in range(int(goal.low), int(goal.high) + 1) for c in range(int(goal.low), int(goal.high) + 1)
                 if not walls[r, c] and (r, c) != self.start_cell()]
        nxt = self.cells_of(np.asarray(data["next_obs"]))
        reward = np.asarray(data["reward"], dtype=float)
        term = np.asarray(data["terminated"], dtype=bool)
        out = []
        for g in cells:
            at = (nxt[:, 0] == g[0]) & (nxt[:, 1] == g[1])
            expect = at.astype(float) if self.reward == "sparse" else -bfs_distance(walls, g)[nxt[:, 0], nxt[:, 1]] / n
            if np.all(np.abs(expect - reward) < 1e-4) and np.array_equal(at, term):
                out.append(g)
        return out

    def frozen_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """Exact for a fixed start and no goal cue: the best frozen policy is the best
        open-loop path (the environment is deterministic and the policy sees only its
        position), planned by dynamic programming over (cell, set of posterior goals already
        reached) for the expected return under the posterior, and scored on the true goal.
        None where the posterior holds more than ``MAX_LIMIT_GOALS`` goals."""
        return self._planned_return(task, data, self._best_path)

    def online_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """Exact for a fixed start and no goal cue: the Bayes-adaptive policy over beliefs (sets
        of goals consistent with everything seen so far, support and episode), by dynamic
        programming over (step, cell, belief), scored on the true goal."""
        task = self.validate_task(task)
        start = self.start_cell()
        if start is None or self.cue_steps:
            return None
        goals = self.goal_posterior(task, data)
        n, walls = self.size, self.walls(task)
        nxt = successors(walls)
        dist = {g: bfs_distance(walls, g).reshape(-1) for g in goals}
        flat = {g: g[0] * n + g[1] for g in goals}
        sparse = self.reward == "sparse"

        def reward(g: tuple[int, int], cell: int) -> float:
            return float(cell == flat[g]) if sparse else -float(dist[g][cell]) / n

        def outcomes(belief: tuple, cell: int) -> dict:
            """Goals still possible after arriving at ``cell``, grouped by what is observed."""
            groups: dict = {}
            for g in belief:
                if cell != flat[g]:
                    groups.setdefault(round(reward(g, cell), 9), []).append(g)
            return {k: tuple(v) for k, v in groups.items()}

        # the value of a belief depends on the task only through its walls: shared across calls
        memo = self._online_values.setdefault(walls.tobytes(), {})

        def value(t: int, cell: int, belief: tuple) -> tuple[float, int]:
            key = (t, cell, belief)
            if key in memo:
                return memo[key]
            if t == self.max_episode_steps or not belief:
                return 0.0, 0
            best = (-np.inf, 0)
            for a in range(4):
                nc = int(nxt[cell, a])
                v = sum(reward(g, nc) for g in belief) / len(belief)
                v += sum(len(b) / len(belief) * value(t + 1, nc, b)[0] for b in outcomes(belief, nc).values())
                best = max(best, (v, -a))
            memo[key] = (best[0], -best[1])
            return memo[key]

        true, cell, belief, total = tuple(task["goal"]), start[0] * n + start[1], tuple(goals), 0.0
        for t in range(self.max_episode_steps):
            nc = int(nxt[cell, value(t, cell, belief)[1]])
            total += reward(true, nc)
            if nc == flat[true]:
                break
            belief = outcomes(belief, nc)[round(reward(true, nc), 9)]
            cell = nc
        return total

    def memoryless_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """As :meth:`frozen_limit_return`, for the best frozen policy that reads only its current
        cell — a deterministic map from cell to action, what a greedy Q(s, a; c) with the context
        fixed can express on a family whose observation is the agent's cell. Its path from the
        start visits distinct cells until it steps onto one it has left, then repeats that
        cycle; the best such path for the posterior is found by branch and bound, bounded by the
        open-loop plan's values (never above :meth:`frozen_limit_return`'s plan in expectation).
        None where the frozen limit is."""
        return self._planned_return(task, data, self._best_memoryless_path)

    def _planned_return(self, task: Task, data: Mapping[str, np.ndarray],
                        planner: Callable[[Task, Sequence[tuple[int, int]]], list[int]]) -> float | None:
        """The true goal's return of the path ``planner`` picks for the posterior given ``data``;
        None for a random start, a goal cue, or a posterior over more than ``MAX_LIMIT_GOALS``."""
        task = self.validate_task(task)
        if self.start_cell() is None or self.cue_steps:
            return None
        goals = self.goal_posterior(task, data)
        if not 1 <= len(goals) <= self.MAX_LIMIT_GOALS:
            return None
        return self._path_return(task, tuple(task["goal"]), planner(task, goals))

    def _plan_tables(self, task: Task, goals: Sequence[tuple[int, int]]) -> dict[str, Any]:
        """The open-loop plan's dynamic program over (cell, set of posterior goals already
        reached): the mean reward of entering a cell, the reached-goal bits, and ``values[s]``,
        the best mean return with ``s`` steps left, with ``choices[s - 1]`` its best action."""
        n, walls = self.size, self.walls(task)
        nxt = successors(walls)
        n_goals, masks = len(goals), 1 << len(goals)
        flat = [g[0] * n + g[1] for g in goals]
        if self.reward == "dense":
            per_goal = np.stack([-bfs_distance(walls, g).reshape(-1) / n for g in goals])     # [goal, cell]
        else:
            per_goal = np.zeros((n_goals, n * n))
            per_goal[np.arange(n_goals), flat] = 1.0
        per_goal = np.where(np.isfinite(per_goal), per_goal, 0.0)
        not_reached = 1 - ((np.arange(masks)[:, None] >> np.arange(n_goals)) & 1)               # [mask, goal]
        reward = (not_reached @ per_goal).T / n_goals                                            # [cell, mask]
        bit = np.zeros(n * n, dtype=int)
        bit[flat] = 1 << np.arange(n_goals)
        new_mask = np.arange(masks)[None, :] | bit[:, None]                                       # [cell, mask]
        values, choices = [np.zeros((n * n, masks))], []
        for _ in range(self.max_episode_steps):
            q = np.stack([reward[nxt[:, a]] + values[-1][nxt[:, a][:, None], new_mask[nxt[:, a]]] for a in range(4)])
            choices.append(q.argmax(0))                                                           # [cell, mask]
            values.append(q.max(0))
        return {"nxt": nxt, "reward": reward, "bit": bit, "values": values, "choices": choices, "masks": masks}

    def _best_path(self, task: Task, goals: Sequence[tuple[int, int]]) -> list[int]:
        """Actions of the open-loop path maximising the mean return over ``goals``."""
        return self._open_loop(self._plan_tables(task, goals))

    def _open_loop(self, plan: dict[str, Any]) -> list[int]:
        """The actions the open-loop plan's tables choose from the start."""
        nxt, bit, n = plan["nxt"], plan["bit"], self.size
        cell, mask, path = self.start_cell()[0] * n + self.start_cell()[1], 0, []
        for t in range(self.max_episode_steps):
            a = int(plan["choices"][self.max_episode_steps - 1 - t][cell, mask])
            path.append(a)
            cell = nxt[cell, a]
            mask |= bit[cell]
        return path

    def _best_memoryless_path(self, task: Task, goals: Sequence[tuple[int, int]]) -> list[int]:
        """Actions of the best path a map from cell to action follows, for the mean return over
        ``goals``: depth-first over paths of distinct cells, each closed by a step onto a cell
        already on it (the rest repeats that cycle) or ended by the horizon or the last goal;
        a branch is cut where its return so far plus the open-loop plan's value from its end
        cannot beat the best path found (children tried best bound first)."""
        return self._memoryless_path(self._plan_tables(task, goals))

    def _memoryless_path(self, plan: dict[str, Any]) -> list[int]:
        """:meth:`_best_memoryless_path` from the open-loop plan's tables (:meth:`_plan_tables`)."""
        n, horizon = self.size, self.max_episode_steps
        nxt, reward, bit = plan["nxt"].tolist(), plan["reward"].tolist(), plan["bit"].tolist()
        values, full = [v.tolist() for v in plan["values"]], plan["masks"] - 1
        start = self.start_cell()[0] * n + self.start_cell()[1]
        # the open-loop plan itself where a map of the cell follows it (so that ties break alike):
        # no cell left by two different moves before the last goal is reached
        open_loop, cell, mask, chosen = self._open_loop(plan), start, 0, {}
        for a in open_loop:
            if mask == full:
                return open_loop
            if chosen.setdefault(cell, a) != a:
                break
            cell = nxt[cell][a]
            mask |= bit[cell]
        else:
            return open_loop
        cells, actions, where = [start], [], {start: 0}
        best: list[Any] = [-np.inf, []]

        def search(cell: int, mask: int, total: float) -> None:
            left = horizon - len(actions)
            children = []
            for a in range(4):
                nc = nxt[cell][a]
                if nc in where:  # the map is now fixed along a cycle: the rest of the path repeats it
                    cycle = actions[where[nc]:] + [a]
                    ring = cells[where[nc]:]
                    value = total + sum(reward[ring[s % len(ring)]][mask] for s in range(left))
                    if value > best[0] + 1e-12:
                        best[0], best[1] = value, actions + [a] + [cycle[s % len(cycle)] for s in range(left - 1)]
                    continue
                gained, m2 = total + reward[nc][mask], mask | bit[nc]
                children.append((gained + values[left - 1][nc][m2], a, nc, m2, gained))
            children.sort(reverse=True)
            for bound, a, nc, m2, gained in children:
                if bound <= best[0] + 1e-12:
                    break
                if left == 1 or m2 == full:  # the horizon, or every goal reached: nothing more to gain
                    best[0], best[1] = gained, actions + [a] * left
                    continue
                where[nc] = len(cells)
                cells.append(nc)
                actions.append(a)
                search(nc, m2, gained)
                actions.pop()
                cells.pop()
                del where[nc]

        search(start, 0, 0.0)
        return best[1]

    def _path_return(self, task: Task, goal: tuple[int, int], path: Sequence[int]) -> float:
        """Undiscounted return of following ``path`` from the start on the task with ``goal``."""
        n, walls = self.size, self.walls(task)
        nxt, dist = successors(walls), bfs_distance(walls, goal).reshape(-1)
        cell, total, target = self.start_cell()[0] * n + self.start_cell()[1], 0.0, goal[0] * n + goal[1]
        for a in path:
            cell = nxt[cell, a]
            total += float(cell == target) if self.reward == "sparse" else -dist[cell] / n
            if cell == target:
                break
        return total
