"""``bandit``: K-armed Bernoulli bandits with varied arm means (a sanity family).

An episode is ``horizon`` pulls; the observation is the fraction of pulls already made
(so the return-to-go is a function of the observation). Pulling arm ``a`` pays 1 with
probability ``means[a]``. The optimum is ``horizon * max(means)``; a random policy earns
``horizon * mean(means)``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from .bandit_limits import MAX_STATES, bayes_adaptive_returns, state_count
from .base import BatchedEnv, Param, Task, TaskError, TaskFamily


class BanditFamily(TaskFamily):
    name = "bandit"
    description = "K-armed Bernoulli bandits; tasks vary the arm means"

    def __init__(self, *, arms: int = 5, horizon: int = 20,
                 ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        if not 2 <= int(arms) <= 1000:
            raise TaskError(f"bandit: arms must be in [2, 1000], got {arms}")
        if int(horizon) < 1:
            raise TaskError(f"bandit: horizon must be >= 1, got {horizon}")
        self.arms, self.max_episode_steps = int(arms), int(horizon)
        self.options = {"arms": self.arms, "horizon": self.max_episode_steps}
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.arms)
        super().__init__(ranges)

    def _param_specs(self) -> tuple[Param, ...]:
        default = np.linspace(0.1, 0.9, self.arms).round(6).tolist()
        return (Param("means", 0.0, 1.0, default, "probability that each arm pays 1", shape=(self.arms,)),)

    def oracle_return(self, task: Task) -> float:
        return self.max_episode_steps * max(self.validate_task(task)["means"])

    def random_return(self, task: Task) -> float:
        return self.max_episode_steps * float(np.mean(self.validate_task(task)["means"]))

    def frozen_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """Exact where the prior is the full range (arm means i.i.d. uniform on [0, 1], so each
        arm's posterior is Beta(1 + successes, 1 + failures)): the best frozen policy pulls the
        arm with the highest posterior mean (ties shared) for the whole episode."""
        task = self.validate_task(task)
        if not self._uniform_prior():
            return None
        alpha, beta = self.beta_posterior(data)
        posterior = alpha / (alpha + beta)
        best = np.flatnonzero(np.isclose(posterior, posterior.max()))
        return self.max_episode_steps * float(np.mean(np.asarray(task["means"])[best]))

    def online_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        return self.online_limit_returns([task], [data])[0]

    def online_limit_returns(self, tasks: Sequence[Task], data: Sequence[Mapping[str, np.ndarray]],
                             ) -> list[float | None]:
        """Exact where the prior is the full range and the state space is affordable
        (:data:`~metadqn.tasks.bandit_limits.MAX_STATES`; 5 arms × 20 pulls are): the
        Bayes-adaptive policy's expected return on each task's true means, by dynamic
        programming over every arm's successes and failures during the episode
        (:mod:`metadqn.tasks.bandit_limits`). 5 arms × 20 pulls on one CPU thread: ≈ 36 s to
        build the tables once, ≈ 2.5 s per instance, ≈ 3 GB of memory at the peak."""
        if not self._uniform_prior() or state_count(self.arms, self.max_episode_steps) > MAX_STATES:
            return [None] * len(tasks)
        alpha, beta = (np.stack(x) for x in zip(*(self.beta_posterior(d) for d in data)))   # [B, K] each
        means = np.array([self.validate_task(t)["means"] for t in tasks], dtype=np.float64)
        _, returns = bayes_adaptive_returns(alpha, beta, means, self.max_episode_steps)
        return [float(r) for r in returns]

    def _uniform_prior(self) -> bool:
        """Whether arm means are i.i.d. uniform on [0, 1] (the limits' Beta(1, 1) prior)."""
        spec = self.param("means")
        return (spec.low, spec.high) == (0.0, 1.0)

    def beta_posterior(self, data: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each arm's Beta(1 + successes, 1 + failures) after ``data`` (``[K]`` each; the limits'
        posterior under the uniform prior, also what ``benchmarks/bandit_choice.py`` compares with)."""
        actions = np.asarray(data["action"], dtype=int).reshape(-1)
        reward = np.asarray(data["reward"], dtype=float).reshape(-1)
        wins = np.bincount(actions, weights=reward, minlength=self.arms)
        return 1 + wins, 1 + np.bincount(actions, minlength=self.arms) - wins

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "BanditBatched":
        return BanditBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)


class BanditBatched(BatchedEnv):
    def __init__(self, family: BanditFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        self.means = self._task_tensor((t["means"] for t in self.tasks)).expand(-1, envs_per_task, -1)

    def _reset_where(self, mask: torch.Tensor) -> None:
        pass  # the only state is the step count, which the base class resets

    def _observe(self) -> torch.Tensor:
        return (self.elapsed.float() / self.max_episode_steps).unsqueeze(-1)

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.means.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        reward = (self._rand(*self.batch_shape) < p).float()
        return reward, self.elapsed + 1 >= self.max_episode_steps
