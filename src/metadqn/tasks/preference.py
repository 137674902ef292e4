"""``preference``: a game that adapts to its player — collect items a hidden player values.

An arena of N×N cells (default 7) with M items (default 6) of K types (default 3), placed at
random cells at every episode start (never the start cell, never two on one cell). The agent
starts in the centre, moves up/down/left/right (walls stop it) and collects an item by walking
onto it. A task is a *player*: hidden preference weights w ∈ [−1, 1]^K; collecting an item of
type j pays w_j, every step costs ``step_cost``. The episode ends when every item is collected
or after ``horizon`` steps (default 30). Observations show the agent and the items with their
types, never w. By default (``egocentric=True``) the arena is seen from the agent: a window of
(2N − 1)² cells centred on it, whose first plane marks the cells inside the arena (so walls
show) and the others the items of each type — flattened to a vector, or with ``pixels=True`` a
``[K + 1, 2N − 1, 2N − 1]`` image for the CNN. The view makes "an item one step up" the same
input wherever the agent is: with the map seen from above (``egocentric=False``: a vector
``[agent row, agent col (scaled to [0, 1]), K occupancy maps]``, or with ``pixels=True`` a
``[K + 1, N, N]`` image, agent then one channel per type), a single-task DQN with every weight
1 did not learn to collect items in 60k steps (greedy return 0.0, random 1.1, optimum 5.7; seen
from the agent: 4.7).

This is the setting of successor features with generalised policy improvement (Barreto et
al., 2017): same dynamics, rewards linear in item features, new weights per task.

References: for a fixed layout the optimum and the uniformly random policy's return are exact
by dynamic programming over (cell, items collected); ``oracle_return``/``random_return``
average them over a fixed sample of ``reference_layouts`` layouts (the only approximation).
The frozen information limit is exact in the same sense (:meth:`PreferenceFamily.frozen_limit_return`):
an item collected in the support data reveals its type's weight, nothing else does.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from .base import BatchedEnv, Param, Task, TaskError, TaskFamily
from .grid import MOVES, successors


class PreferenceFamily(TaskFamily):
    name = "preference"
    description = "Collect items whose values follow a hidden player's preferences; tasks vary the weights"

    def __init__(self, *, size: int = 7, item_types: int = 3, items: int = 6, horizon: int = 30,
                 step_cost: float = 0.02, pixels: bool = False, egocentric: bool = True,
                 reference_layouts: int = 200,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        if not 3 <= int(size) <= 16:
            raise TaskError(f"preference: size must be in [3, 16], got {size}")
        if not 1 <= int(item_types) <= 8:
            raise TaskError(f"preference: item_types must be in [1, 8], got {item_types}")
        if not 1 <= int(items) <= min(12, int(size) ** 2 - 1):
            raise TaskError(f"preference: items must be in [1, {min(12, int(size) ** 2 - 1)}], got {items}")
        if int(horizon) < 1 or not np.isfinite(step_cost) or step_cost < 0 or int(reference_layouts) < 1:
            raise TaskError("preference: horizon and reference_layouts must be >= 1 and step_cost >= 0")
        self.size, self.item_types, self.items = int(size), int(item_types), int(items)
        self.max_episode_steps, self.step_cost, self.pixels = int(horizon), float(step_cost), bool(pixels)
        self.egocentric = bool(egocentric)
        self.reference_layouts = int(reference_layouts)
        self.options = {"size": self.size, "item_types": self.item_types, "items": self.items,
                        "horizon": self.max_episode_steps, "step_cost": self.step_cost, "pixels": self.pixels,
                        "egocentric": self.egocentric, "reference_layouts": self.reference_layouts}
        n, k = self.size, self.item_types
        if self.egocentric:
            w = 2 * n - 1
            shape = (k + 1, w, w) if self.pixels else ((k + 1) * w * w,)
        else:
            shape = (k + 1, n, n) if self.pixels else (2 + k * n * n,)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self._references: dict[tuple, tuple[float, float]] = {}
        self._limits: dict[tuple, float] = {}
        super().__init__(ranges)

    def _param_specs(self) -> tuple[Param, ...]:
        default = np.linspace(1.0, -1.0, self.item_types).round(6).tolist() if self.item_types > 1 else [1.0]
        return (Param("weights", -1.0, 1.0, default, "what the player pays for an item of each type (hidden)",
                      shape=(self.item_types,)),)

    def start_cell(self) -> int:
        return (self.size // 2) * self.size + self.size // 2

    # -- exact returns for a layout, averaged over a fixed sample of layouts ----------------
    def reference_layout_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """``reference_layouts`` layouts drawn once, reproducibly: cells ``[L, M]`` and types ``[L, M]``."""
        rng = np.random.default_rng(12345)
        free = np.setdiff1d(np.arange(self.size ** 2), [self.start_cell()])
        cells = np.stack([rng.choice(free, self.items, replace=False) for _ in range(self.reference_layouts)])
        types = rng.integers(0, self.item_types, (self.reference_layouts, self.items))
        return cells, types

    def layout_returns(self, weights: Sequence[float], cells: np.ndarray, types: np.ndarray) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
        """Optimal and uniformly-random expected returns ``[L]`` from the start for layouts
        ``cells``/``types`` ``[L, M]`` by DP over (cell, collected items)."""
        return (self._backward(weights, cells, types, policy="optimal"),
                self._backward(weights, cells, types, policy="random"))

    def planned_returns(self, plan: Sequence[float], weights: Sequence[float], cells: np.ndarray,
                        types: np.ndarray) -> np.ndarray:
        """Expected returns ``[L]`` under ``weights`` of the policy that is optimal for the weights
        ``plan`` (ties between its best actions split evenly), by the same DP."""
        return self._backward(weights, cells, types, policy="planned", plan=plan)

    def _backward(self, weights: Sequence[float], cells: np.ndarray, types: np.ndarray, *, policy: str,
                  plan: Sequence[float] | None = None) -> np.ndarray:
        n, m, horizon = self.size, self.items, self.max_episode_steps
        n_layouts, masks = cells.shape[0], 1 << m
        nxt = successors(np.zeros((n, n), dtype=bool))                                          # [cell, action]
        item_at = np.full((n_layouts, n * n), -1)
        item_at[np.arange(n_layouts)[:, None], cells] = np.arange(m)                             # [L, cell]
        mask_ids = np.arange(masks)
        full = masks - 1
        lead, take = [], []            # per action: where its future value sits ([L, cell·mask]), what it collects
        for a in range(4):
            cell = nxt[:, a]                                                                      # [cell]
            item = item_at[:, cell]                                                               # [L, cell]
            bit = np.where(item >= 0, 1 << np.maximum(item, 0), 0)                                # [L, cell]
            fresh = (item >= 0)[:, :, None] & ((bit[:, :, None] & mask_ids[None, None, :]) == 0)  # [L, cell, mask]
            new_mask = mask_ids[None, None, :] | bit[:, :, None]                                  # [L, cell, mask]
            lead.append((cell[None, :, None] * masks + new_mask).reshape(n_layouts, -1))
            take.append((fresh, np.maximum(item, 0)))

        def gains(w: Sequence[float]) -> list[np.ndarray]:
            value_of = np.asarray(w, dtype=float)[types]                                          # [L, M]
            return [np.where(fresh, np.take_along_axis(value_of, item, 1)[:, :, None], 0.0).reshape(n_layouts, -1)
                    - self.step_cost for fresh, item in take]

        def q_values(value: np.ndarray, gain: list[np.ndarray]) -> np.ndarray:
            # value[:, :, full] stays 0: collecting the last item ends the episode
            flat = value.reshape(n_layouts, -1)
            return np.stack([g + np.take_along_axis(flat, i, 1) for g, i in zip(gain, lead)]).reshape(
                4, n_layouts, n * n, masks)                                                       # [A, L, cell, mask]

        score = gains(weights)
        steer = score if plan is None else gains(plan)
        value = np.zeros((n_layouts, n * n, masks))
        planned = np.zeros_like(value)
        for _ in range(horizon):
            q = q_values(value, steer)
            if policy == "planned":
                best = np.isclose(q, q.max(0, keepdims=True), rtol=0.0, atol=1e-9)
                planned = (q_values(planned, score) * best).sum(0) / best.sum(0)
                planned[:, :, full] = 0.0
            value = q.max(0) if policy != "random" else q.mean(0)
            value[:, :, full] = 0.0
        return (planned if policy == "planned" else value)[:, self.start_cell(), 0]

    def _reference(self, task: Task) -> tuple[float, float]:
        key = tuple(np.round(task["weights"], 9))
        if key not in self._references:
            best, rand = self.layout_returns(task["weights"], *self.reference_layout_sample())
            self._references[key] = (float(best.mean()), float(rand.mean()))
        return self._references[key]

    def oracle_return(self, task: Task) -> float:
        return self._reference(self.validate_task(task))[0]

    def random_return(self, task: Task) -> float:
        return self._reference(self.validate_task(task))[1]

    # -- the information limit ------------------------------------------------------------
    def frozen_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """Exact: collecting an item of type j reveals w_j (its reward), and nothing else in the
        data does, so the posterior keeps each unrevealed weight at its prior (uniform on its
        range, independent across types). A frozen policy's trajectory does not depend on w and
        its return is linear in w, so the best one is the optimum for the posterior mean ŵ (w_j
        where revealed, the range's mean elsewhere); its return under the true w is averaged
        over the reference layouts, like :meth:`oracle_return`."""
        task = self.validate_task(task)
        spec = self.param("weights")
        prior_mean = (float(np.mean(spec.choices)) if spec.choices is not None
                      else (spec.low + spec.high) / 2.0)
        revealed = self.revealed_types(data)
        plan = np.where(revealed, np.asarray(task["weights"], dtype=float), prior_mean)
        key = (tuple(np.round(task["weights"], 9)), tuple(np.round(plan, 9)))
        if key not in self._limits:
            self._limits[key] = float(self.planned_returns(plan, task["weights"],
                                                           *self.reference_layout_sample()).mean())
        return self._limits[key]

    def revealed_types(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        """``[K]`` bools: which item types ``data`` saw collected (an item of that type present in
        a step's observation and gone from its next observation)."""
        def counts(obs: np.ndarray) -> np.ndarray:
            obs = np.asarray(obs, dtype=float)
            steps, n, k = obs.shape[0], self.size, self.item_types
            if self.pixels or self.egocentric:
                return obs.reshape(steps, k + 1, -1)[:, 1:].sum(-1)
            return obs[:, 2:].reshape(steps, k, n * n).sum(-1)
        if len(data.get("obs", ())) == 0:
            return np.zeros(self.item_types, dtype=bool)
        return (counts(data["obs"]) - counts(data["next_obs"]) > 0.5).any(0)

    # -- environments ---------------------------------------------------------------------
    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "PreferenceBatched":
        return PreferenceBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)

    def render_text(self, env: BatchedEnv) -> str:
        n = self.size
        grid = np.full((n, n), ".", dtype=object)
        for cell, kind, alive in zip(env.item_cell[0, 0].tolist(), env.item_type[0, 0].tolist(),
                                     env.alive[0, 0].tolist()):
            if alive:
                grid[cell // n, cell % n] = "abcdefgh"[kind]
        pos = int(env.pos[0, 0])
        grid[pos // n, pos % n] = "A"
        return "\n".join("".join(row) for row in grid)


class PreferenceBatched(BatchedEnv):
    state_names = ("pos", "item_cell", "item_type", "alive")

    def __init__(self, family: PreferenceFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        n, m = family.size, family.items
        self.size, self.k = n, family.item_types
        self.weights = self._task_tensor((t["weights"] for t in self.tasks))                    # [task, 1, K]
        self.moves = torch.as_tensor(MOVES, device=self.device)
        self.start = family.start_cell()
        shape = self.batch_shape
        self.pos = torch.full(shape, self.start, dtype=torch.long, device=self.device)          # flat cell
        self.item_cell = torch.zeros((*shape, m), dtype=torch.long, device=self.device)
        self.item_type = torch.zeros((*shape, m), dtype=torch.long, device=self.device)
        self.alive = torch.zeros((*shape, m), dtype=torch.bool, device=self.device)
        free = torch.ones(n * n, device=self.device)
        free[self.start] = 0.0
        self.free = free
        self.pixels, self.egocentric = family.pixels, family.egocentric
        # the egocentric window: seen from cell p, the arena's cell q lands at window cell
        # (row q - row p + N - 1, col q - col p + N - 1), flattened; one row [N²] per agent cell p
        rows, cols = torch.arange(n * n, device=self.device) // n, torch.arange(n * n, device=self.device) % n
        self.window_index = ((rows[None, :] - rows[:, None] + n - 1) * (2 * n - 1)
                             + cols[None, :] - cols[:, None] + n - 1)                           # [cell p, cell q]
        self.step_cost = family.step_cost

    def _reset_where(self, mask: torch.Tensor) -> None:
        count = int(np.prod(self.batch_shape))
        m = self.item_cell.shape[-1]
        cells = torch.multinomial(self.free.expand(count, -1), m, replacement=False,
                                  generator=self.generator).view(*self.batch_shape, m)
        types = torch.randint(0, self.k, (*self.batch_shape, m), generator=self.generator, device=self.device)
        here = mask.unsqueeze(-1)
        self.item_cell = torch.where(here, cells, self.item_cell)
        self.item_type = torch.where(here, types, self.item_type)
        self.alive = torch.where(here, torch.ones_like(self.alive), self.alive)
        self.pos = torch.where(mask, torch.full_like(self.pos, self.start), self.pos)

    def _observe(self) -> torch.Tensor:
        n, k = self.size, self.k
        maps = torch.zeros((*self.batch_shape, k, n * n), device=self.device)
        maps.scatter_(-1, (self.item_cell).unsqueeze(-2).expand(-1, -1, k, -1),
                      ((self.item_type.unsqueeze(-2) == torch.arange(k, device=self.device).view(k, 1))
                       & self.alive.unsqueeze(-2)).float())
        if self.egocentric:
            return self._observe_egocentric(maps)
        if self.pixels:
            agent = torch.nn.functional.one_hot(self.pos, n * n).float().unsqueeze(-2)
            return torch.cat((agent, maps), dim=-2).view(*self.batch_shape, k + 1, n, n)
        row, col = self.pos // n, self.pos % n
        agent = torch.stack((row, col), -1).float() / (n - 1)
        return torch.cat((agent, maps.flatten(-2)), dim=-1)

    def _observe_egocentric(self, maps: torch.Tensor) -> torch.Tensor:
        """The arena seen from the agent: a ``(2N - 1)²`` window centred on it whose first channel
        marks cells inside the arena (so walls show) and the others the items of each type."""
        n, k = self.size, self.k
        w = 2 * n - 1
        inside = torch.ones((*self.batch_shape, 1, n * n), device=self.device)
        planes = torch.cat((inside, maps), dim=-2)                                             # [..., K+1, N²]
        index = self.window_index[self.pos]                                                     # [task, env, N²]
        view = torch.zeros((*self.batch_shape, k + 1, w * w), device=self.device)
        view.scatter_(-1, index.unsqueeze(-2).expand(-1, -1, k + 1, -1), planes)
        if self.pixels:
            return view.view(*self.batch_shape, k + 1, w, w)
        return view.flatten(-2)

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.size
        move = self.moves[actions]                                                              # [task, env, 2]
        row = (self.pos // n + move[..., 0]).clamp(0, n - 1)
        col = (self.pos % n + move[..., 1]).clamp(0, n - 1)
        self.pos = row * n + col
        got = self.alive & (self.item_cell == self.pos.unsqueeze(-1))                          # [task, env, M]
        value = self.weights.expand(-1, self.envs_per_task, -1).gather(-1, self.item_type)     # [task, env, M]
        reward = (got.to(value.dtype) * value).sum(-1) - self.step_cost
        self.alive = self.alive & ~got
        return reward.float(), ~self.alive.any(-1)
