"""Task families: a distribution of related tasks, each a small parameter record.

A :class:`TaskFamily` knows its parameters (with ranges), how to sample and split tasks
reproducibly, how to expose one task as a plain ``gymnasium.Env`` and how to step many
tasks x many environments at once as a :class:`BatchedEnv` (torch tensors, no Python loop
over environments).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch


class TaskError(ValueError):
    """Raised for an unknown family, an unknown or out-of-range parameter, or bad actions."""


class UserCodeError(RuntimeError):
    """An error raised inside a user's environment (or what it returned was unusable): the
    message names the family, the call and the user's file and line."""


def user_frame(tb: Any) -> str:
    """``file:line`` of the innermost traceback frame outside metadqn and the libraries it
    calls (the user's code), else of the innermost frame."""
    import os
    import traceback
    frames = traceback.extract_tb(tb)
    ours = (os.sep + "metadqn" + os.sep, os.sep + "gymnasium" + os.sep, os.sep + "numpy" + os.sep,
            os.sep + "torch" + os.sep)
    outside = [f for f in frames if not any(part in f.filename for part in ours)]
    frame = (outside or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


@dataclass(frozen=True)
class Param:
    """One task parameter: its name, range, default and what it means.

    ``shape`` is ``()`` for a scalar; ``integer`` parameters are sampled with
    ``rng.integers(low, high + 1)``; ``choices`` (if given) replaces the range with a set.
    ``inferable=False`` marks a parameter that names rather than measures (a layout's random
    seed): it is left out of :meth:`TaskFamily.task_vector`.
    """

    name: str
    low: float
    high: float
    default: Any
    help: str
    shape: tuple[int, ...] = ()
    integer: bool = False
    choices: tuple[float, ...] | None = None
    inferable: bool = True

    def scaled(self, value: Any) -> np.ndarray:
        """``value`` flattened and scaled to [0, 1] by the range (or the choices' span)."""
        low, high = (min(self.choices), max(self.choices)) if self.choices is not None else (self.low, self.high)
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        return (arr - low) / (high - low) if high > low else np.zeros_like(arr)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "low": self.low, "high": self.high,
                             "default": self.default, "shape": list(self.shape),
                             "integer": self.integer, "help": self.help}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        return d

    def sample(self, rng: np.random.Generator) -> Any:
        if self.choices is not None:
            value = rng.choice(np.asarray(self.choices), size=self.shape or None)
        elif self.integer:
            value = rng.integers(int(self.low), int(self.high) + 1, size=self.shape or None)
        else:
            value = rng.uniform(self.low, self.high, size=self.shape or None)
        return _plain(value)

    def validate(self, family: str, value: Any) -> Any:
        arr = np.asarray(value, dtype=float)
        if arr.shape != self.shape:
            raise TaskError(f"parameter {self.name!r} of family {family!r} must have shape "
                            f"{list(self.shape)}, got {value!r}")
        if not np.all(np.isfinite(arr)):
            raise TaskError(f"parameter {self.name!r} of family {family!r} must be finite, got {value!r}")
        if self.choices is not None:
            if not np.all(np.isin(arr, self.choices)):
                raise TaskError(f"parameter {self.name!r} of family {family!r} must be one of "
                                f"{list(self.choices)}, got {value!r}")
        elif np.any(arr < self.low) or np.any(arr > self.high):
            raise TaskError(f"parameter {self.name!r}={value!r} is out of range "
                            f"[{self.low}, {self.high}] for family {family!r}")
        if self.integer and np.any(arr != np.round(arr)):
            raise TaskError(f"parameter {self.name!r} of family {family!r} must be integer, got {value!r}")
        return _plain(arr.astype(int) if self.integer else arr)


def _plain(value: Any) -> Any:
    """numpy scalars/arrays -> Python floats/ints/lists (JSON-friendly, hashable via key())."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return int(arr) if np.issubdtype(arr.dtype, np.integer) else float(arr)
    return arr.tolist()


@dataclass(frozen=True)
class Task:
    """A task: the family it belongs to and its parameter values (JSON-friendly)."""

    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> tuple:
        """A hashable identity, used to keep train and test splits disjoint."""
        return tuple((k, _round(v)) for k, v in sorted(self.params.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self.params)}

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


def _round(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_round(x) for x in v)
    return round(v, 9) if isinstance(v, float) else v


@dataclass
class StepResult:
    """What :meth:`BatchedEnv.step` returns; every tensor has leading axes ``[task, env]``.

    ``obs`` is the observation to act on next (already reset where an episode ended);
    ``next_obs`` is the true successor of the step (the terminal observation where an
    episode ended), which is what replay must store. ``episode_return`` and
    ``episode_length`` are meaningful where ``terminated | truncated``.
    """

    obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor
    episode_return: torch.Tensor
    episode_length: torch.Tensor

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class BatchedEnv(ABC):
    """``n_tasks x envs_per_task`` environments stepped in one tensor operation.

    Subclasses keep their state as tensors with leading axes ``[task, env]`` and implement
    :meth:`_reset_where`, :meth:`_observe` and :meth:`_transition`. Episodes auto-reset;
    the time limit is applied here (``truncated``). ``state_names`` lists the attributes
    that hold the whole per-environment state (a step is a function of them and the actions).
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, family: "TaskFamily", tasks: Sequence[Task], envs_per_task: int,
                 device: str | torch.device = "cpu", seed: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        if len(tasks) == 0:
            raise TaskError("make_batched needs at least one task")
        if envs_per_task < 1:
            raise TaskError(f"envs_per_task must be >= 1, got {envs_per_task}")
        for t in tasks:
            if t.family != family.name:
                raise TaskError(f"task of family {t.family!r} given to family {family.name!r}")
        self.family = family
        self.tasks = list(tasks)
        self.n_tasks = len(tasks)
        self.envs_per_task = envs_per_task
        self.device = torch.device(device)
        self.dtype = dtype
        self.observation_space = family.observation_space
        self.action_space = family.action_space
        self.n_actions = int(family.action_space.n)
        self.obs_shape = tuple(family.observation_space.shape)
        self.max_episode_steps = family.max_episode_steps
        self.generator = torch.Generator(device=self.device)
        self.seed(seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0]))
        shape = (self.n_tasks, envs_per_task)
        self.elapsed = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.running_return = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self._started = False

    @property
    def batch_shape(self) -> tuple[int, int]:
        return (self.n_tasks, self.envs_per_task)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every environment; returns observations ``[task, env, *obs_shape]``."""
        if seed is not None:
            self.seed(seed)
        every = torch.ones(self.batch_shape, dtype=torch.bool, device=self.device)
        self._reset_where(every)
        self.elapsed.zero_()
        self.running_return.zero_()
        self._started = True
        return self._observe()

    def step(self, actions: torch.Tensor) -> StepResult:
        """Step every environment with integer ``actions`` of shape ``[task, env]``."""
        if not self._started:
            raise TaskError("call reset() before step()")
        actions = self._check_actions(actions)
        reward, terminated = self._transition(actions)
        self.elapsed += 1
        truncated = ((self.elapsed >= self.max_episode_steps) | self._truncated_now()) & ~terminated
        next_obs = self._observe()
        done = terminated | truncated
        self.running_return += reward
        episode_return = self.running_return.clone()
        episode_length = self.elapsed.clone()
        self._reset_where(done)
        self.elapsed.masked_fill_(done, 0)
        self.running_return.masked_fill_(done, 0.0)
        return StepResult(self._observe(), reward, terminated, truncated, next_obs,
                          episode_return, episode_length)

    def _check_actions(self, actions: torch.Tensor | np.ndarray) -> torch.Tensor:
        actions = torch.as_tensor(actions, device=self.device)
        if tuple(actions.shape) != self.batch_shape:
            raise TaskError(f"actions must have shape [task, env] = {list(self.batch_shape)}, "
                            f"got {list(actions.shape)}")
        if actions.dtype.is_floating_point or actions.dtype == torch.bool:
            raise TaskError(f"actions must be integers, got dtype {actions.dtype}")
        actions = actions.long()
        if bool(((actions < 0) | (actions >= self.n_actions)).any()):
            raise TaskError(f"actions must lie in [0, {self.n_actions - 1}]")
        return actions

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def _task_tensor(self, values: Iterable[Any], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Per-task values -> tensor ``[task, 1, ...]`` that broadcasts over the env axis."""
        t = torch.as_tensor(np.asarray(list(values)), dtype=dtype or self.dtype, device=self.device)
        return t.unsqueeze(1)

    def _truncated_now(self) -> torch.Tensor | bool:
        """Where the dynamics themselves cut the episode short this step (wrapped envs); no time limit here."""
        return False

    def close(self) -> None:
        """Release resources (wrapped environments); tensor-only envs hold none."""

    @abstractmethod
    def _reset_where(self, mask: torch.Tensor) -> None:
        """Re-initialise the state of environments where ``mask`` ``[task, env]`` is true."""

    @abstractmethod
    def _observe(self) -> torch.Tensor:
        """Current observations ``[task, env, *obs_shape]`` (float32)."""

    @abstractmethod
    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the dynamics; returns ``(reward [task, env] float32, terminated [task, env] bool)``.

        ``self.elapsed`` still holds the step count before this step.
        """


class TaskEnv(gym.Env):
    """One task as a plain ``gymnasium.Env``, running the family's batched dynamics on 1x1.

    Sharing the batched code guarantees single and batched environments agree. Physics are
    stepped in float64 (as Gymnasium's classic-control envs do); observations are float32.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 30}

    def __init__(self, family: "TaskFamily", task: Task, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise TaskError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.family = family
        self.task = family.validate_task(task)
        self.observation_space = family.observation_space
        self.action_space = family.action_space
        self.render_mode = render_mode
        self.spec = None
        self._batched = family.make_batched([self.task], 1, dtype=torch.float64, seed=0)
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._batched.seed(int(self.np_random.integers(0, 2**31 - 1)))
        obs = self._batched.reset()
        self._needs_reset = False
        return obs[0, 0].cpu().numpy().astype(np.float32), {}

    def step(self, action):
        if self._needs_reset:
            raise TaskError("call reset() before step() (and after an episode ends)")
        if not self.action_space.contains(action):
            raise TaskError(f"action {action!r} is not in {self.action_space}")
        out = self._batched.step(torch.tensor([[int(action)]]))
        terminated, truncated = bool(out.terminated[0, 0]), bool(out.truncated[0, 0])
        self._needs_reset = terminated or truncated
        obs = out.next_obs[0, 0].cpu().numpy().astype(np.float32)
        return obs, float(out.reward[0, 0]), terminated, truncated, {}

    def render(self):
        if self.render_mode == "ansi":
            return self.family.render_text(self._batched)
        return None


class TaskFamily(ABC):
    """A distribution of related tasks. Subclasses set ``name``, ``description`` and
    ``params`` and implement :meth:`make_batched`."""

    name: str = ""
    description: str = ""
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Discrete
    max_episode_steps: int
    options: dict[str, Any]

    @property
    def recommendation(self) -> str:
        """The key of this family's recommended meta-training settings
        (:data:`~metadqn.meta.config.FAMILY_DEFAULTS`): its name, unless its options make it a
        different problem (gridnav with obstacles: ``"gridnav+obstacles"``)."""
        return self.name

    def __init__(self, ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        """``ranges`` narrows parameters' ranges (``{name: (low, high)}`` inside the declared
        range); it is recorded in ``options``, so saved runs sample from the same ranges."""
        self.params: tuple[Param, ...] = self._param_specs()
        if ranges:
            if not isinstance(ranges, Mapping):
                raise TaskError(f"ranges must map parameter names to [low, high] pairs, got {ranges!r}")
            by_name = {p.name: p for p in self.params}
            narrowed = {}
            for name, rng in ranges.items():
                if name not in by_name:
                    raise TaskError(f"ranges: unknown parameter {name!r} for family {self.name!r}; "
                                    f"known: {sorted(by_name)}")
                try:
                    low, high = (float(x) for x in rng)
                except (TypeError, ValueError):
                    raise TaskError(f"ranges: {name!r} needs a [low, high] pair of numbers, got {rng!r}") from None
                if not low <= high:
                    raise TaskError(f"ranges: {name!r} needs low <= high, got {rng!r}")
                declared = by_name[name]
                if low < declared.low or high > declared.high:
                    raise TaskError(f"ranges: {name!r} may only narrow its range [{declared.low:g}, "
                                    f"{declared.high:g}], got [{low:g}, {high:g}]")
                by_name[name] = Param(**{**declared.__dict__, "low": low, "high": high})
                narrowed[name] = [low, high]
            self.params = tuple(by_name[p.name] for p in self.params)
            self.options = {**getattr(self, "options", {}), "ranges": narrowed}

    # -- parameters and tasks -------------------------------------------------------------
    @abstractmethod
    def _param_specs(self) -> tuple[Param, ...]:
        """The parameters of this family given its options."""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise TaskError(f"unknown parameter {name!r} for family {self.name!r}; "
                        f"known: {[p.name for p in self.params]}")

    def task(self, **params: Any) -> Task:
        """Build a validated task; parameters not given take their defaults."""
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TaskError(f"unknown parameter(s) {unknown} for family {self.name!r}; known: {sorted(known)}")
        values = {p.name: p.validate(self.name, params.get(p.name, p.default)) for p in self.params}
        task = Task(self.name, values)
        self._check_task(task)
        return task

    def validate_task(self, task: Task | Mapping[str, Any]) -> Task:
        if isinstance(task, Task):
            if task.family != self.name:
                raise TaskError(f"task of family {task.family!r} given to family {self.name!r}")
            return self.task(**task.params)
        if not isinstance(task, Mapping):
            raise TaskError(f"a task must be a Task or a mapping of parameters, got {type(task).__name__}")
        return self.task(**task)

    def task_vector(self, task: Task) -> np.ndarray:
        """The task's inferable parameters as one vector, each scaled to [0, 1] by its range:
        what meta-training's optional task-inference loss (``task_loss_weight``) asks the
        adapted context to predict. Never used at test time."""
        parts = [p.scaled(task[p.name]) for p in self.params if p.inferable]
        return np.concatenate(parts) if parts else np.zeros(0)

    def _check_task(self, task: Task) -> None:
        """Constraints across parameters (e.g. a goal not on an obstacle); raise TaskError."""

    def default_task(self) -> Task:
        return self.task()

    def _sample_task(self, rng: np.random.Generator) -> Task | None:
        """One random task, or None if the draw violates a constraint (it is redrawn)."""
        task = Task(self.name, {p.name: p.sample(rng) for p in self.params})
        try:
            self._check_task(task)
        except TaskError:
            return None
        return task

    def sample_tasks(self, n: int, seed: int = 0) -> list[Task]:
        """``n`` tasks drawn independently (repeats possible) from the family, reproducibly."""
        if n < 0:
            raise TaskError(f"n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        tasks: list[Task] = []
        attempts = 0
        while len(tasks) < n:
            attempts += 1
            if attempts > 1000 * (n + 1):
                raise TaskError(f"could not sample valid tasks for family {self.name!r}; check its ranges")
            task = self._sample_task(rng)
            if task is not None:
                tasks.append(task)
        return tasks

    def split(self, n_train: int, n_test: int, seed: int = 0) -> tuple[list[Task], list[Task]]:
        """Disjoint train and held-out test tasks (all distinct), reproducible from ``seed``."""
        if n_train < 0 or n_test < 0:
            raise TaskError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
        need = n_train + n_test
        rng = np.random.default_rng(seed)
        seen: set[tuple] = set()
        tasks: list[Task] = []
        misses = 0
        while len(tasks) < need:
            task = self._sample_task(rng)
            if task is None or task.key() in seen:
                misses += 1
                if misses > 200 * (need + 10):
                    have = len(tasks)
                    fewer = (f" (ask for fewer, e.g. n_train_tasks={have - have // 3}, n_test_tasks={have // 3})"
                             if have >= 3 else "")
                    raise TaskError(f"family {self.name!r} has only about {have} distinct tasks with "
                                    f"these options; asked for {n_train} train + {n_test} test{fewer}")
                continue
            seen.add(task.key())
            tasks.append(task)
        return tasks[:n_train], tasks[n_train:]

    # -- environments ---------------------------------------------------------------------
    @abstractmethod
    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> BatchedEnv:
        """``len(tasks) x envs_per_task`` environments stepped as one tensor operation."""

    def make_env(self, task: Task | Mapping[str, Any] | None = None,
                 render_mode: str | None = None) -> gym.Env:
        """One task as a ``gymnasium.Env`` (passes ``gymnasium.utils.env_checker.check_env``)."""
        return TaskEnv(self, task if task is not None else self.default_task(), render_mode)

    def render_text(self, env: BatchedEnv) -> str:
        return f"{self.name} task {dict(env.tasks[0].params)}"

    # -- reference returns ----------------------------------------------------------------
    def oracle_return(self, task: Task) -> float | None:
        """The optimal expected (undiscounted) episode return for ``task`` if known exactly."""
        return None

    def random_return(self, task: Task) -> float | None:
        """The expected return of the uniformly random policy if known exactly."""
        return None

    def frozen_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """The information limit of a frozen policy, where the family can compute it exactly:
        the expected return on ``task`` of the Bayes-optimal policy that is fixed after seeing
        ``data`` (one instance's support transitions: ``obs``, ``action``, ``reward``,
        ``next_obs``, ``terminated``, each ``[step, ...]``), under the family's task prior.
        None where it is not known."""
        return None

    def online_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """As :meth:`frozen_limit_return`, for the Bayes-optimal policy that keeps updating its
        belief from what it observes during the evaluation episode (``data`` may be empty)."""
        return None

    def memoryless_limit_return(self, task: Task, data: Mapping[str, np.ndarray]) -> float | None:
        """As :meth:`frozen_limit_return`, restricted to deterministic policies of the current
        observation alone (what a greedy Q-network with a fixed context expresses), where the
        family can compute it exactly. None where it is not known."""
        return None

    def online_limit_returns(self, tasks: Sequence[Task], data: Sequence[Mapping[str, np.ndarray]],
                             ) -> list[float | None]:
        """:meth:`online_limit_return` of many instances (one ``data`` mapping per task); a
        family whose exact computation is cheaper in batches overrides this."""
        return [self.online_limit_return(t, d) for t, d in zip(tasks, data)]

    def describe(self) -> dict[str, Any]:
        """Machine-readable description (``metadqn families --json``)."""
        return {
            "name": self.name,
            "description": self.description,
            "options": dict(self.options),
            "parameters": [p.describe() for p in self.params],
            "observation_space": {"shape": list(self.observation_space.shape),
                                  "dtype": str(self.observation_space.dtype),
                                  "low": _finite(self.observation_space.low.min()),
                                  "high": _finite(self.observation_space.high.max())},
            "action_space": {"n": int(self.action_space.n)},
            "max_episode_steps": self.max_episode_steps,
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None
