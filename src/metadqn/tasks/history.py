"""Observation wrappers: a family whose observations add what the agent knows of its own episode.

``with_time(family)`` appends the elapsed fraction of the episode, t / H, to a vector
observation (as Gymnasium's ``TimeAwareObservation``): the environment, its tasks, rewards,
random draws and information limits are the base family's, so with the same seed it produces
the same episodes. A policy frozen after adaptation may then depend on the step as well as the
observation — a plan in time, as the frozen information limit's plan is — and the Q-values of a
finite-horizon task become a function of what the Q-network reads (Pardo et al. 2018, "Time
limits in reinforcement learning"). Meta-training turns it on with ``MetaConfig.time_feature``.

Observation histories: ``with_history(family, window)``, any family whose observations are the
last ``window`` steps.

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


class WrappedFamily(TaskFamily):
    """``base``'s tasks, parameters, returns and information limits under other observations
    (the subclass's batched env); :meth:`newest_steps` maps support data back to ``base``'s."""

    def __init__(self, base: TaskFamily, *, name: str, description: str, options: Mapping[str, Any],
                 observation_space: gym.spaces.Box) -> None:
        self.base, self.name, self.description = base, name, description
        self.max_episode_steps = base.max_episode_steps
        self.options = dict(options)
        self.observation_space, self.action_space = observation_space, base.action_space
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

    batched: type  # the subclass's batched env

    def base_observation(self, obs: np.ndarray) -> np.ndarray:
        """Observations ``[..., *observation_shape]`` as the base family shows them."""
        raise NotImplementedError

    def newest_steps(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Support data in the base family's terms (``obs``/``next_obs`` by :meth:`base_observation`)."""
        out = dict(data)
        for key in ("obs", "next_obs"):
            if key in out:
                out[key] = self.base_observation(np.asarray(out[key]))
        return out

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> BatchedEnv:
        return self.batched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)

    # The wrappers add what the agent knows of its own episode, not task information: the limits
    # are the base family's where, like gridnav's and the bandit's, they are over policies that
    # may depend on the whole history already.
    def frozen_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        return self.base.frozen_limit_return(self._inner(self.validate_task(task)), self.newest_steps(data))

    def online_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        return self.base.online_limit_return(self._inner(self.validate_task(task)), self.newest_steps(data))

    def online_limit_returns(self, tasks: Sequence[Task], data: Sequence[Mapping[str, np.ndarray]],
                             ) -> list[float | None]:
        return self.base.online_limit_returns([self._inner(self.validate_task(t)) for t in tasks],
                                              [self.newest_steps(d) for d in data])

    def render_text(self, env: BatchedEnv) -> str:
        return self.base.render_text(env.inner)


class WrappedBatched(BatchedEnv):
    """The base family's batched env (``inner``, seeded by :meth:`inner_seed` whenever this one
    is seeded), stepped by the subclass's :meth:`reset` and :meth:`step`."""

    def __init__(self, family: WrappedFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        seed = seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        self.inner = family.base.make_batched([family._inner(t) for t in self.tasks], envs_per_task, device,
                                              self.inner_seed(seed), dtype)

    def inner_seed(self, seed: int) -> int:
        """The inner env's seed when this one is seeded with ``seed`` (right after this one's
        generator is): ``seed`` itself, so the inner env plays the base family's own episodes."""
        return seed

    def seed(self, seed: int) -> None:
        super().seed(seed)
        if hasattr(self, "inner"):  # not yet while BatchedEnv.__init__ seeds
            self.inner.seed(self.inner_seed(seed))

    def close(self) -> None:
        self.inner.close()

    # the base class's hooks are not used: stepping is delegated to the inner env
    def _reset_where(self, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class TimeFamily(WrappedFamily):
    """``base`` with t / H appended to its vector observations (see the module docstring). Its
    name and options are ``base``'s: tasks, splits and saved runs are the base family's."""

    def __init__(self, base: TaskFamily) -> None:
        if len(base.observation_space.shape) != 1:
            raise TaskError(f"with_time needs vector observations; {base.name!r} has shape "
                            f"{list(base.observation_space.shape)}")
        low = np.concatenate((base.observation_space.low, [0.0])).astype(np.float32)
        high = np.concatenate((base.observation_space.high, [1.0])).astype(np.float32)
        described = getattr(base, "description", base.name)
        super().__init__(base, name=base.name, description=f"{described} (and t / H observed)",
                         options=base.options, observation_space=gym.spaces.Box(low, high, dtype=np.float32))

    @property
    def recommendation(self) -> str:
        return self.base.recommendation

    def base_observation(self, obs: np.ndarray) -> np.ndarray:
        return obs[..., :-1]  # less t / H


class TimeBatched(WrappedBatched):
    """The base family's batched env, seeded as it would be alone, with t / H observed."""

    def _timed(self, obs: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        return torch.cat((obs, (elapsed.to(obs.dtype) / self.max_episode_steps).unsqueeze(-1)), dim=-1)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.seed(seed)
        self._started = True
        return self._timed(self.inner.reset(), self.inner.elapsed)

    def step(self, actions: torch.Tensor) -> StepResult:
        if not self._started:
            raise TaskError("call reset() before step()")
        out = self.inner.step(self._check_actions(actions))
        return StepResult(self._timed(out.obs, self.inner.elapsed), out.reward, out.terminated, out.truncated,
                          self._timed(out.next_obs, out.episode_length), out.episode_return, out.episode_length)

    def _observe(self) -> torch.Tensor:
        return self._timed(self.inner._observe(), self.inner.elapsed)


TimeFamily.batched = TimeBatched


def with_time(family: TaskFamily) -> TimeFamily:
    """``family`` with the elapsed fraction of the episode t / H appended to its observations
    (the same tasks, name, options and episodes; see the module docstring)."""
    return family if isinstance(family, TimeFamily) else TimeFamily(family)


def without_time(family: TaskFamily) -> TaskFamily:
    """The family :func:`with_time` wrapped (``family`` itself where it is not such a wrapper)."""
    return family.base if isinstance(family, TimeFamily) else family


class HistoryFamily(WrappedFamily):
    """``base`` with observations ``[window, D + 1]`` (see the module docstring)."""

    def __init__(self, base: TaskFamily, window: int, name: str | None = None,
                 description: str | None = None, options: Mapping[str, Any] | None = None) -> None:
        if len(base.observation_space.shape) != 1:
            raise TaskError(f"with_history needs vector observations; {base.name!r} has shape "
                            f"{list(base.observation_space.shape)}")
        if int(window) < 1:
            raise TaskError(f"window must be >= 1, got {window}")
        self.window = int(window)
        low = np.concatenate((np.minimum(base.observation_space.low, 0.0), [0.0])).astype(np.float32)
        high = np.concatenate((np.maximum(base.observation_space.high, 0.0), [1.0])).astype(np.float32)
        space = gym.spaces.Box(np.tile(low, (self.window, 1)), np.tile(high, (self.window, 1)), dtype=np.float32)
        super().__init__(base, name=name or f"{base.name}+history{self.window}",
                         description=description or f"{base.name} with the last {self.window} observations as observation",
                         options=dict(options) if options is not None else {**base.options, "window": self.window},
                         observation_space=space)

    def base_observation(self, obs: np.ndarray) -> np.ndarray:
        return obs[..., -1, :-1]  # each window's newest step, less its flag


class HistoryBatched(WrappedBatched):
    """The base family's batched env, with a rolling window of its observations."""

    def __init__(self, family: HistoryFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        self.history = torch.zeros((*self.batch_shape, *self.obs_shape), device=self.device)

    def _push(self, history: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        step = torch.cat((obs.float(), torch.ones_like(obs[..., :1], dtype=torch.float32)), dim=-1)
        return torch.cat((history[..., 1:, :], step.unsqueeze(-2)), dim=-2)

    def inner_seed(self, seed: int) -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))  # drawn from this env's stream

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

    def _observe(self) -> torch.Tensor:
        return self.history


HistoryFamily.batched = HistoryBatched


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
