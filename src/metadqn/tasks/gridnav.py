"""``gridnav``: robot path planning on an N x N grid to a hidden goal.

The agent sees its own position (scaled to [0, 1]) and, when the family has obstacles, the
obstacle map; it does not see the goal, so it must infer the goal from rewards. With
``cue_steps=c > 0`` three more features show ``[goal row, goal col, 1]`` (scaled to [0, 1])
during the first ``c`` steps of an episode and zeros afterwards: a partially observable
family where memory matters (``gridnav-memory``).

Moves: 0 up, 1 down, 2 left, 3 right; a move into a wall or off the grid leaves the agent
in place. Reaching the goal ends the episode (terminated); otherwise it is truncated after
``horizon`` steps (default 2N).

Reward (``reward=``):
- ``"dense"`` (default): ``-d(s', goal) / N`` after every step, where ``d`` is the
  shortest-path distance around obstacles; 0 on the step that reaches the goal.
- ``"sparse"``: +1 on reaching the goal, 0 otherwise.

The exact optimum and the uniformly random policy's return are computed by finite-horizon
dynamic programming (value iteration over the horizon): see :meth:`GridNavFamily.oracle_return`;
the information limit given support data in :mod:`metadqn.tasks.gridnav_limits`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from .base import BatchedEnv, Param, Task, TaskError, TaskFamily
from .grid import MOVES, bfs_distance, obstacle_layout, successors
from .gridnav_limits import GridNavLimits

STARTS = ("center", "corner", "random")
REWARDS = ("dense", "sparse")


class GridNavFamily(GridNavLimits, TaskFamily):
    name = "gridnav"
    description = "Grid path planning to a hidden goal; tasks vary the goal and (optionally) the obstacles"

    def __init__(self, *, size: int = 8, obstacles: int = 0, start: str = "center",
                 reward: str = "dense", horizon: int | None = None, cue_steps: int = 0,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        if not 2 <= int(size) <= 64:
            raise TaskError(f"gridnav: size must be in [2, 64], got {size}")
        if not 0 <= int(obstacles) <= size * size // 2:
            raise TaskError(f"gridnav: obstacles must be in [0, {size * size // 2}], got {obstacles}")
        if start not in STARTS:
            raise TaskError(f"gridnav: start must be one of {STARTS}, got {start!r}")
        if reward not in REWARDS:
            raise TaskError(f"gridnav: reward must be one of {REWARDS}, got {reward!r}")
        self.size, self.obstacles, self.start, self.reward = int(size), int(obstacles), start, reward
        self.max_episode_steps = int(horizon) if horizon is not None else 2 * self.size
        if self.max_episode_steps < 1:
            raise TaskError(f"gridnav: horizon must be >= 1, got {horizon}")
        if int(cue_steps) < 0:
            raise TaskError(f"{self.name}: cue_steps must be >= 0, got {cue_steps}")
        self.cue_steps = int(cue_steps)
        self._online_values: dict[bytes, dict] = {}  # online_limit_return's memo, per wall layout
        self.options = {"size": self.size, "obstacles": self.obstacles, "start": start,
                        "reward": reward, "horizon": self.max_episode_steps}
        if self.cue_steps:
            self.options["cue_steps"] = self.cue_steps
        obs_dim = 2 + (self.size * self.size if self.obstacles else 0) + (3 if self.cue_steps else 0)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        super().__init__(ranges)

    def _param_specs(self) -> tuple[Param, ...]:
        n = self.size
        specs = [Param("goal", 0, n - 1, [n - 1, n - 1], "goal cell [row, col] (hidden from the agent)",
                       shape=(2,), integer=True)]
        if self.obstacles:
            specs.append(Param("layout", 0, 2**31 - 2, 0, "seed of the obstacle layout", integer=True,
                               inferable=False))
        return tuple(specs)

    # -- layout helpers -------------------------------------------------------------------
    def start_cell(self) -> tuple[int, int] | None:
        """The fixed start cell, or None when starts are random."""
        if self.start == "center":
            return (self.size // 2, self.size // 2)
        if self.start == "corner":
            return (0, 0)
        return None

    @property
    def recommendation(self) -> str:
        # with obstacles every task draws its own layout: held-out tasks are new maps as well as
        # new goals, and the Q-network must generalize over maps (far more training tasks)
        return f"{self.name}+obstacles" if self.obstacles else self.name

    def walls(self, task: Task) -> np.ndarray:
        start = self.start_cell()
        keep = (start[0] * self.size + start[1],) if start else ()
        return obstacle_layout(self.size, self.obstacles, int(task.params.get("layout", 0)), keep)

    def _check_task(self, task: Task) -> None:
        goal = tuple(task["goal"])
        if self.walls(task)[goal]:
            raise TaskError(f"gridnav: goal {list(goal)} lies on an obstacle of layout {task.params.get('layout')}")
        if goal == self.start_cell():
            raise TaskError(f"gridnav: goal {list(goal)} is the start cell")

    # -- exact returns by dynamic programming ----------------------------------------------
    def _dp_return(self, task: Task, optimal: bool) -> float:
        walls = self.walls(task)
        n, goal = self.size, tuple(task["goal"])
        dist = bfs_distance(walls, goal).reshape(-1)
        nxt = successors(walls)                                    # [cell, action]
        at_goal = nxt == goal[0] * n + goal[1]
        reward = -dist[nxt] / n if self.reward == "dense" else at_goal.astype(float)
        value = np.zeros(n * n)
        for _ in range(self.max_episode_steps):
            q = reward + np.where(at_goal, 0.0, value[nxt])
            value = q.max(-1) if optimal else q.mean(-1)
        value = value.reshape(n, n)
        start = self.start_cell()
        if start is not None:
            return float(value[start])
        starts = ~walls
        starts[goal] = False
        return float(value[starts].mean())

    def oracle_return(self, task: Task) -> float:
        return self._dp_return(self.validate_task(task), optimal=True)

    def random_return(self, task: Task) -> float:
        return self._dp_return(self.validate_task(task), optimal=False)

    # -- environments ---------------------------------------------------------------------
    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "GridNavBatched":
        return GridNavBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)

    def render_text(self, env: BatchedEnv) -> str:
        walls = env.walls[0].view(self.size, self.size).cpu().numpy()
        grid = np.where(walls, "#", ".").astype(object)
        goal = env.tasks[0]["goal"]
        grid[goal[0], goal[1]] = "G"
        r, c = env.pos[0, 0].tolist()
        grid[r, c] = "A"
        return "\n".join("".join(row) for row in grid)


class GridNavBatched(BatchedEnv):
    state_names = ("pos",)

    def __init__(self, family: GridNavFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        n = family.size
        self.size = n
        walls = np.stack([family.walls(t) for t in self.tasks])                   # [task, n, n]
        dist = np.stack([bfs_distance(w, tuple(t["goal"])) for w, t in zip(walls, self.tasks)])
        self.walls = torch.as_tensor(walls.reshape(self.n_tasks, n * n), device=self.device)
        self.dist = torch.as_tensor(np.where(np.isinf(dist), 0, dist).reshape(self.n_tasks, n * n),
                                    dtype=torch.float32, device=self.device)  # [task, n*n]
        self.goal = self._task_tensor((t["goal"] for t in self.tasks), dtype=torch.long)  # [task, 1, 2]
        self.moves = torch.as_tensor(MOVES, device=self.device)
        start = family.start_cell()
        self.fixed_start = torch.as_tensor(start, device=self.device) if start else None
        start_weights = (~self.walls).float()
        start_weights.scatter_(1, (self.goal[:, :, 0] * n + self.goal[:, :, 1]), 0.0)
        self.start_weights = start_weights                                          # [task, n*n]
        self.pos = torch.zeros((*self.batch_shape, 2), dtype=torch.long, device=self.device)
        self.obs_walls = self.walls.float().unsqueeze(1).expand(-1, envs_per_task, -1) if family.obstacles else None
        self.dense = family.reward == "dense"
        self.cue_steps = family.cue_steps

    def _reset_where(self, mask: torch.Tensor) -> None:
        if self.fixed_start is not None:
            fresh = self.fixed_start.expand_as(self.pos)
        else:
            flat = torch.multinomial(self.start_weights, self.envs_per_task, replacement=True,
                                     generator=self.generator)                        # [task, env]
            fresh = torch.stack((flat // self.size, flat % self.size), dim=-1)
        self.pos = torch.where(mask.unsqueeze(-1), fresh, self.pos)

    def _observe(self) -> torch.Tensor:
        parts = [self.pos.float() / (self.size - 1)]
        if self.obs_walls is not None:
            parts.append(self.obs_walls)
        if self.cue_steps:  # [goal row, goal col, 1] scaled to [0, 1] while the cue shows, else zeros
            shown = (self.elapsed < self.cue_steps).float().unsqueeze(-1)
            goal = (self.goal.float() / (self.size - 1)).expand(-1, self.envs_per_task, -1)
            parts.append(shown * torch.cat((goal, torch.ones_like(goal[..., :1])), dim=-1))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _flat(self, pos: torch.Tensor) -> torch.Tensor:
        return pos[..., 0] * self.size + pos[..., 1]

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cand = (self.pos + self.moves[actions]).clamp(0, self.size - 1)
        blocked = self.walls.gather(1, self._flat(cand))
        self.pos = torch.where(blocked.unsqueeze(-1), self.pos, cand)
        reached = (self.pos == self.goal).all(-1)
        if self.dense:
            reward = -self.dist.gather(1, self._flat(self.pos)) / self.size
        else:
            reward = reached.float()
        return reward, reached


class GridNavPixelsFamily(GridNavFamily):
    """``gridnav-pixels``: gridnav seen as a small image, for the CNN Q-network.

    Observation ``[3, N, N]`` in {0, 1}: channel 0 the walls, channel 1 the agent, channel 2
    the goal during the first ``cue_steps`` steps of an episode (0, the default: never, so the
    goal stays hidden as in ``gridnav``). Obstacles vary per task (``layout``) by default.
    """

    name = "gridnav-pixels"
    description = "gridnav as a 3xNxN image (walls, agent, optional goal cue) for a CNN; obstacles vary per task"

    def __init__(self, *, size: int = 8, obstacles: int = 10, start: str = "center", reward: str = "dense",
                 horizon: int | None = None, cue_steps: int = 0,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        super().__init__(size=size, obstacles=obstacles, start=start, reward=reward, horizon=horizon,
                         cue_steps=cue_steps, ranges=ranges)
        self.options["cue_steps"] = self.cue_steps
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3, self.size, self.size), dtype=np.float32)

    def cells_of(self, obs: np.ndarray) -> np.ndarray:
        """The agent's cells ``[T, 2]``: where channel 1 of each image ``[T, 3, N, N]`` is lit."""
        flat = obs[:, 1].reshape(obs.shape[0], self.size * self.size).argmax(1)
        return np.stack((flat // self.size, flat % self.size), axis=1)

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "GridNavPixelsBatched":
        return GridNavPixelsBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed,
                                    dtype)


class GridNavPixelsBatched(GridNavBatched):
    def __init__(self, family: GridNavPixelsFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        n, cells = self.size, self.size * self.size
        self.wall_image = self.walls.float().view(self.n_tasks, 1, 1, n, n).expand(-1, envs_per_task, -1, -1, -1)
        goal_flat = (self.goal[:, 0, 0] * n + self.goal[:, 0, 1])
        self.goal_image = torch.nn.functional.one_hot(goal_flat, cells).float().view(self.n_tasks, 1, 1, n, n)

    def _observe(self) -> torch.Tensor:
        n = self.size
        agent = torch.nn.functional.one_hot(self._flat(self.pos), n * n).float().view(*self.batch_shape, 1, n, n)
        cue = (self.elapsed < self.cue_steps).float().view(*self.batch_shape, 1, 1, 1) * self.goal_image
        return torch.cat((self.wall_image, agent, cue.expand(-1, self.envs_per_task, -1, -1, -1)), dim=2)
