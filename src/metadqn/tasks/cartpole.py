"""``cartpole-physics``: Gymnasium's CartPole with varied physics.

The dynamics are Gymnasium's ``CartPoleEnv`` (Euler integration, tau = 0.02 s, failure at
|x| > 2.4 or |theta| > 12 degrees, reward 1 per step, 500-step limit), batched over tasks and
environments. ``total_mass`` and ``polemass_length`` are derived from the task's parameters
at every step: Gymnasium derives them once in its constructor, so setting ``masspole`` on a
made ``CartPoleEnv`` silently changes nothing (a bug in public MAML-DQN code).

``force_sign = -1`` reverses the push: a policy that balances one task drops the pole on its
mirror task, so the family cannot be solved without adapting.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from .base import BatchedEnv, Param, Task, TaskFamily

THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4
TAU = 0.02


class CartPoleFamily(TaskFamily):
    name = "cartpole-physics"
    description = ("CartPole (Gymnasium dynamics) with varied pole length, pole mass, cart mass, "
                   "gravity, push strength and push direction")

    def __init__(self, *, reverse_force: bool = True, max_episode_steps: int = 500,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        self.reverse_force = bool(reverse_force)
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.max_episode_steps = int(max_episode_steps)
        self.options = {"reverse_force": self.reverse_force, "max_episode_steps": self.max_episode_steps}
        high = np.array([X_LIMIT * 2, np.inf, THETA_LIMIT * 2, np.inf], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        super().__init__(ranges)

    def _param_specs(self) -> tuple[Param, ...]:
        return (
            Param("length", 0.25, 1.0, 0.5, "half the pole's length (m), as Gymnasium's `length`"),
            Param("masspole", 0.05, 0.5, 0.1, "pole mass (kg)"),
            Param("masscart", 0.5, 2.0, 1.0, "cart mass (kg)"),
            Param("gravity", 4.9, 14.7, 9.8, "gravity (m/s^2)"),
            Param("force_mag", 5.0, 15.0, 10.0, "magnitude of the push (N)"),
            Param("force_sign", -1.0, 1.0, 1.0, "direction of the push: +1 as Gymnasium, -1 reversed",
                  choices=(-1.0, 1.0) if self.reverse_force else (1.0,)),
        )

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "CartPoleBatched":
        return CartPoleBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)

    def render_text(self, env: BatchedEnv) -> str:
        x, _, theta, _ = env.state[0, 0].tolist()
        col = int(np.clip((x + X_LIMIT) / (2 * X_LIMIT) * 40, 0, 40))
        return "." * col + "#" + "." * (40 - col) + f"  x={x:+.2f} theta={math.degrees(theta):+.1f}deg"


class CartPoleBatched(BatchedEnv):
    state_names = ("state",)

    def __init__(self, family: CartPoleFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        col = lambda name: self._task_tensor(t[name] for t in self.tasks)  # noqa: E731  [task, 1]
        self.gravity, self.masscart, self.masspole = col("gravity"), col("masscart"), col("masspole")
        self.length = col("length")
        self.force = col("force_mag") * col("force_sign")
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length
        self.state = torch.zeros((*self.batch_shape, 4), dtype=dtype, device=self.device)

    def _reset_where(self, mask: torch.Tensor) -> None:
        fresh = self._rand(*self.batch_shape, 4) * 0.1 - 0.05  # U(-0.05, 0.05) as Gymnasium
        self.state = torch.where(mask.unsqueeze(-1), fresh, self.state)

    def _observe(self) -> torch.Tensor:
        return self.state.float()

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        force = torch.where(actions == 1, self.force, -self.force)
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot.square() * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta.square() / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        self.state = torch.stack((x, x_dot, theta, theta_dot), dim=-1)
        terminated = (x.abs() > X_LIMIT) | (theta.abs() > THETA_LIMIT)
        return torch.ones_like(x, dtype=torch.float32), terminated
