"""Observation histories: any family whose observations are the last ``window`` steps.

``with_history(family, window)`` wraps a family with vector observations ``[D]`` into one
whose observation is ``[window, D + 1]``: the last ``window`` observations of the current
episode, oldest first, each with a trailing 1 ("a real step"); steps before the episode
started are all zeros. A recurrent Q-network (``NetSpec(kind="gru")``) reads the window
step by step (DRQN with a fixed history length); an MLP reads it flattened (frame stacking).
Because the window is part of the observation, replay stores sequences and every piece of
the pipeline (TD loss, vmapped inner loop, evaluation) works unchanged.

``gridnav-memory`` is gridnav with the goal shown only in the first step (``cue_steps=1``)
and a window as long as the episode: without memory the goal is forgotten after one step.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from .base import BatchedEnv, Param, StepResult, Task, TaskError, TaskFamily
from .gridnav import GridNavFamily


class HistoryFamily(TaskFamily):
    """``base`` with observations ``[window, D + 1]`` (see the module docstring)."""

    def __init__(self, base: TaskFamily, window: int, name: str | None = None,
                 description: str | None = None, options: Mapping[str, Any] | None = None) -> None:
        if len(base.observation_space.shape) != 1:
            raise TaskError(f"with_history needs vector observations; {base.name!r} has shape "
                            f"{list(base.observation_space.shape)}")
        if int(window) < 1:
            raise TaskError(f"window must be >= 1, got {window}")
        self.base, self.window = base, int(window)
        self.name = name or f"{base.name}+history{self.window}"
        self.description = description or f"{base.name} with the last {self.window} observations as observation"
        self.max_episode_steps = base.max_episode_steps
        self.options = dict(options) if options is not None else {**base.options, "window": self.window}
        low = np.concatenate((np.minimum(base.observation_space.low, 0.0), [0.0])).astype(np.float32)
        high = np.concatenate((np.maximum(base.observation_space.high, 0.0), [1.0])).astype(np.float32)
        self.observation_space = gym.spaces.Box(np.tile(low, (self.window, 1)), np.tile(high, (self.window, 1)),
                                                dtype=np.float32)
        self.action_space = base.action_space
        super().__init__(None)

    def _param_specs(self) -> tuple[Param, ...]:
        return self.base.params

    def _inner(self, task: Task) -> Task:
        return Task(self.base.name, dict(task.params))

    def _check_task(self, task: Task) -> None:
        self.base._check_task(self._inner(task))

    def oracle_return(self, task: Task) -> float | None:
        return self.base.oracle_return(self._inner(self.validate_task(task)))

    def random_return(self, task: Task) -> float | None:
        return self.base.random_return(self._inner(self.validate_task(task)))

    def newest_steps(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Support data in the base family's terms: each window's newest step, less its flag."""
        out = dict(data)
        for key in ("obs", "next_obs"):
            if key in out:
                out[key] = np.asarray(out[key])[..., -1, :-1]
        return out

    # A history adds memory of the agent's own observations, not task information: the limits are
    # the base family's where, like gridnav's and the bandit's, they are over policies that may
    # depend on the whole history already.
    def frozen_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        return self.base.frozen_limit_return(self._inner(self.validate_task(task)), self.newest_steps(data))

    def online_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        return self.base.online_limit_return(self._inner(self.validate_task(task)), self.newest_steps(data))

    def online_limit_returns(self, tasks: Sequence[Task], data: Sequence[Mapping[str, np.ndarray]],
                             ) -> list[float | None]:
        return self.base.online_limit_returns([self._inner(self.validate_task(t)) for t in tasks],
                                              [self.newest_steps(d) for d in data])

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "HistoryBatched":
        return HistoryBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)

    def render_text(self, env: BatchedEnv) -> str:
        return self.base.render_text(env.inner)


class HistoryBatched(BatchedEnv):
    """The base family's batched env, with a rolling window of its observations."""

    def __init__(self, family: HistoryFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        self.inner = family.base.make_batched([family._inner(t) for t in self.tasks], envs_per_task, device,
                                              seed, dtype)
        self.history = torch.zeros((*self.batch_shape, *self.obs_shape), device=self.device)

    def _push(self, history: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        step = torch.cat((obs.float(), torch.ones_like(obs[..., :1], dtype=torch.float32)), dim=-1)
        return torch.cat((history[..., 1:, :], step.unsqueeze(-2)), dim=-2)

    def seed(self, seed: int) -> None:
        super().seed(seed)
        if hasattr(self, "inner"):
            self.inner.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.seed(seed)
        obs = self.inner.reset()
        self.history = self._push(torch.zeros_like(self.history), obs)
        self._started = True
        return self.history.clone()

    def step(self, actions: torch.Tensor) -> StepResult:
        if not self._started:
            raise TaskError("call reset() before step()")
        out = self.inner.step(self._check_actions(actions))
        next_history = self._push(self.history, out.next_obs)
        fresh = self._push(torch.zeros_like(self.history), out.obs)
        self.history = torch.where(out.done.view(*self.batch_shape, 1, 1), fresh, next_history)
        return StepResult(self.history.clone(), out.reward, out.terminated, out.truncated, next_history,
                          out.episode_return, out.episode_length)

    def close(self) -> None:
        self.inner.close()

    # the base class's hooks are not used: stepping is delegated to the inner env
    def _reset_where(self, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def _observe(self) -> torch.Tensor:
        return self.history

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def with_history(family: TaskFamily, window: int, name: str | None = None) -> HistoryFamily:
    """``family`` with the last ``window`` observations (plus a "real step" flag) as observation.

    To use it by name (CLI, saved runs), register a factory:
    ``register_family("my-memory", lambda window=16, **o: with_history(make_family("gridnav", **o), window,
    "my-memory"))`` (its options are the base family's plus ``window``).
    """
    return HistoryFamily(family, window, name)


def gridnav_memory(*, size: int = 8, cue_steps: int = 1, window: int | None = None, horizon: int | None = None,
                   ranges: Mapping[str, Sequence[float]] | None = None) -> HistoryFamily:
    """``gridnav-memory``: the goal shows only in the first ``cue_steps`` steps; the observation
    is the last ``window`` steps (default: the whole episode)."""
    if int(cue_steps) < 1:
        raise TaskError(f"gridnav-memory: cue_steps must be >= 1 (else there is nothing to remember), got {cue_steps}")
    base = GridNavFamily(size=size, cue_steps=cue_steps, horizon=horizon, ranges=ranges)
    window = int(window) if window is not None else base.max_episode_steps
    options = {"size": base.size, "cue_steps": base.cue_steps, "window": window, "horizon": base.max_episode_steps}
    return HistoryFamily(base, window, name="gridnav-memory", options=options,
                         description=("gridnav whose goal shows only in the first step(s); observations are the "
                                      "last `window` steps, for a recurrent (gru) Q-network"))


def gridnav_history(*, size: int = 8, obstacles: int = 0, start: str = "center", reward: str = "dense",
                    horizon: int | None = None, window: int | None = None,
                    ranges: Mapping[str, Sequence[float]] | None = None) -> HistoryFamily:
    """``gridnav-history``: gridnav's tasks, rewards and information limits, with the episode's
    own observations as memory — the observation is the last ``window`` steps (default: the
    whole episode). The goal stays hidden and rewards are not shown, so a policy frozen after
    adaptation stays frozen; memory lets it tour the goals its data leaves possible, as the
    frozen limit's plan does, where gridnav's memoryless Q-networks cycle at the first one they
    reach. (A map of the cell could tour them too — ``memoryless_limit_return`` — but the tour's
    values depend on the candidates already visited, which Q-learning cannot read off the cell.)"""
    base = GridNavFamily(size=size, obstacles=obstacles, start=start, reward=reward, horizon=horizon, ranges=ranges)
    window = int(window) if window is not None else base.max_episode_steps
    options = {**base.options, "window": window}
    return HistoryFamily(base, window, name="gridnav-history", options=options,
                         description=("gridnav with the episode's own positions as memory: observations are the "
                                      "last `window` steps (the goal stays hidden)"))
