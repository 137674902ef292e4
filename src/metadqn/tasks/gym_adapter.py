"""Any Gymnasium environment with discrete actions as a task family.

>>> from metadqn.families import from_gymnasium
>>> family = from_gymnasium("CartPole-v1", params={"gravity": (5.0, 15.0)},
...                         setter=lambda env, p: setattr(env, "gravity", p["gravity"]))
>>> train, test = family.split(20, 10)

A task is one value per parameter. How the values reach the environment (``setter``):

- ``None`` (default): ``setattr(env.unwrapped, name, value)`` for each parameter, after
  checking the attribute exists. Beware derived quantities: an env that computes
  ``total_mass`` from ``masspole`` in its constructor ignores a later ``masspole`` — write
  a setter that recomputes them (as ``acrobot-physics`` does).
- ``"kwargs"``: the values are keyword arguments of ``gymnasium.make`` (for envs that read
  them in their constructor, like ``LunarLander``'s ``gravity``).
- a callable ``setter(env, params)`` that gets ``env.unwrapped`` and a dict of values.

Many tasks x environments are stepped through one ``gymnasium.vector.SyncVectorEnv``
(autoreset disabled; the family resets finished environments itself), so the batched
interface is the same as the built-in families', at the speed of the wrapped environment.
A slow simulator can instead be stepped on Ray actors (``make_batched(..., vector_env=)``,
see :mod:`metadqn.scale.rollout`); the transitions are the same.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

from .base import BatchedEnv, Param, Task, TaskError, TaskFamily, UserCodeError, user_frame

Setter = Callable[[gym.Env, dict[str, Any]], None]
EnvFn = Callable[[], gym.Env]
# builds the object that steps ``fns`` (``reset(seed=, options={"reset_mask"})``, ``step``, ``close``
# as a SyncVectorEnv with autoreset disabled); observations in ``space``
VectorFactory = Callable[["GymnasiumFamily", Sequence[EnvFn], gym.spaces.Box], Any]


def sync_vector(family: "GymnasiumFamily", fns: Sequence[EnvFn], space: gym.spaces.Box) -> SyncVectorEnv:
    """The default: every environment in this process, one ``SyncVectorEnv`` (autoreset disabled)."""
    return SyncVectorEnv(list(fns), autoreset_mode=AutoresetMode.DISABLED,
                         observation_mode=(batch_space(space, len(fns)), space))


class MissingExtra(TaskError):
    """A family needs an optional dependency that is not installed."""


class GymnasiumFamily(TaskFamily):
    """A task family made from a registered Gymnasium environment id (see :func:`from_gymnasium`)."""

    def __init__(self, env_id: str, params: Mapping[str, Sequence[float]], setter: Setter | str | None = None, *,
                 name: str | None = None, description: str | None = None,
                 defaults: Mapping[str, Any] | None = None, integer: Sequence[str] = (),
                 max_episode_steps: int | None = None, make_kwargs: Mapping[str, Any] | None = None,
                 ranges: Mapping[str, Sequence[float]] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.env_id = env_id
        self.name = name or f"{env_id}-params"
        self.description = description or f"Gymnasium {env_id} with varied {', '.join(params) or 'nothing'}"
        if not (setter is None or setter == "kwargs" or callable(setter)):
            raise TaskError(f"{self.name}: setter must be None, 'kwargs' or a callable(env, params), got {setter!r}")
        self.setter = setter
        self.make_kwargs = dict(make_kwargs or {})
        self.vector_env: VectorFactory = sync_vector  # where make_batched steps its envs (scale.rollout swaps it)
        self._spec_params = self._parse_params(params, defaults or {}, set(integer))
        probe = self._make(None, {p.name: p.default for p in self._spec_params})
        try:
            if not isinstance(probe.action_space, gym.spaces.Discrete):
                raise TaskError(f"{self.name}: DQN needs a Discrete action space; {env_id} has {probe.action_space}")
            space = probe.observation_space
            if not isinstance(space, gym.spaces.Box):
                raise TaskError(f"{self.name}: observations must be a Box; {env_id} has {space}")
            self.observation_space = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                                                    dtype=np.float32)
            self.action_space = gym.spaces.Discrete(int(probe.action_space.n))
            steps = max_episode_steps or (probe.spec.max_episode_steps if probe.spec else None)
        finally:
            probe.close()
        if not steps or int(steps) < 1:
            raise TaskError(f"{self.name}: {env_id} has no time limit; pass max_episode_steps")
        self.max_episode_steps = int(steps)
        # what a registered factory needs to rebuild this family (saved with every run)
        self.options = {"max_episode_steps": self.max_episode_steps, **dict(options or {})}
        super().__init__(ranges)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["vector_env"] = sync_vector  # a pool of Ray actors stays with the process that made it
        return state

    def _parse_params(self, params: Mapping[str, Sequence[float]], defaults: Mapping[str, Any],
                      integer: set[str]) -> tuple[Param, ...]:
        if not isinstance(params, Mapping):
            raise TaskError(f"{self.name}: params must map a name to (low, high), got {params!r}")
        unknown = sorted(set(defaults) - set(params)) + sorted(integer - set(params))
        if unknown:
            raise TaskError(f"{self.name}: defaults/integer name unknown parameter(s) {unknown}")
        specs = []
        for pname, rng in params.items():
            try:
                low, high = (float(x) for x in rng)
            except (TypeError, ValueError):
                raise TaskError(f"{self.name}: parameter {pname!r} needs (low, high), got {rng!r}") from None
            if not (np.isfinite(low) and np.isfinite(high) and low <= high):
                raise TaskError(f"{self.name}: parameter {pname!r} needs finite low <= high, got {rng!r}")
            default = defaults.get(pname, (low + high) / 2)
            if pname in integer:
                default = int(round(default))
            specs.append(Param(pname, low, high, default, f"{self.env_id} parameter {pname}",
                               integer=pname in integer))
        return tuple(specs)

    def _param_specs(self) -> tuple[Param, ...]:
        return self._spec_params

    def _make(self, render_mode: str | None, values: Mapping[str, Any],
              max_episode_steps: int | None = None) -> gym.Env:
        kwargs = {**self.make_kwargs, **(dict(values) if self.setter == "kwargs" else {})}
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        try:
            env = gym.make(self.env_id, **kwargs)
        except gym.error.DependencyNotInstalled as e:
            raise MissingExtra(f"family {self.name!r} needs an optional dependency: {e}") from None
        except (gym.error.Error, TypeError) as e:  # unknown id, or a keyword the env does not take
            raise TaskError(f"{self.name}: cannot make {self.env_id!r} with {sorted(kwargs)}: {e}") from None
        if self.setter is None:
            for pname, value in values.items():
                if not hasattr(env.unwrapped, pname):
                    raise TaskError(f"{self.name}: {self.env_id} has no attribute {pname!r} to set; pass a setter")
                setattr(env.unwrapped, pname, value)
        elif callable(self.setter):
            self.setter(env.unwrapped, dict(values))
        return env

    def make_env(self, task: Task | Mapping[str, Any] | None = None, render_mode: str | None = None) -> gym.Env:
        """The task as the wrapped Gymnasium env itself (its own checker and time limit)."""
        task = self.validate_task(task if task is not None else self.default_task())
        return self._make(render_mode, task.params, self.max_episode_steps)

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32, vector_env: VectorFactory | None = None
                     ) -> "GymnasiumBatched":
        """``tasks x envs_per_task`` copies of the env; ``vector_env`` says where they are
        stepped (default: the family's ``vector_env``, normally :func:`sync_vector`, here;
        :mod:`metadqn.scale.rollout` sets a pool of Ray actors)."""
        return GymnasiumBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype,
                                vector_env or self.vector_env)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "env_id": self.env_id}


class GymnasiumBatched(BatchedEnv):
    """``tasks x envs`` copies of the env in one ``SyncVectorEnv`` (autoreset disabled).

    ``episode_seeds`` ``[task, env]`` holds the seed of each environment's current episode,
    so any episode can be replayed in a single ``family.make_env(task)``.
    """

    def __init__(self, family: GymnasiumFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype, vector_env: VectorFactory = sync_vector) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        fns = [(lambda t=t: family._make(None, t.params, family.max_episode_steps))
               for t in self.tasks for _ in range(envs_per_task)]
        # one declared observation space for all (bounds may differ per task, e.g. with a length)
        self.vector = self._user_call("creating the env", lambda: vector_env(family, fns, family.observation_space))
        self._obs = np.zeros((len(fns), *self.obs_shape), dtype=np.float32)
        self._inner_truncated = torch.zeros(self.batch_shape, dtype=torch.bool, device=self.device)
        self.episode_seeds = np.zeros(self.batch_shape, dtype=np.int64)

    def _reset_where(self, mask: torch.Tensor) -> None:
        flat = mask.reshape(-1).cpu().numpy().astype(bool)
        if not flat.any():
            return
        seeds = torch.randint(0, 2**31 - 1, (flat.size,), generator=self.generator, device=self.device).cpu().numpy()
        self.episode_seeds.reshape(-1)[flat] = seeds[flat]
        obs, _ = self._user_call("reset", lambda: self.vector.reset(seed=[int(s) for s in seeds],
                                                                      options={"reset_mask": flat}))
        self._obs[flat] = self._checked("reset", np.asarray(obs, dtype=np.float32), None)[flat]

    def _observe(self) -> torch.Tensor:
        return torch.as_tensor(self._obs, device=self.device).reshape(*self.batch_shape, *self.obs_shape).clone()

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs, reward, terminated, truncated, _ = self._user_call(
            "step", lambda: self.vector.step(actions.reshape(-1).cpu().numpy()))
        self._obs = self._checked("step", np.asarray(obs, dtype=np.float32).copy(), np.asarray(reward, dtype=float))
        self._inner_truncated = self._as_tensor(truncated, torch.bool)
        return self._as_tensor(reward, torch.float32), self._as_tensor(terminated, torch.bool)

    def _user_call(self, what: str, fn: Any) -> Any:
        """Run ``fn`` (which calls the user's env); its errors become one clear UserCodeError."""
        try:
            return fn()
        except TaskError:
            raise
        except Exception as e:
            raise UserCodeError(f"family {self.family.name!r} ({self.family.env_id}): {what} raised "
                                f"{type(e).__name__}: {e} at {user_frame(e.__traceback__)}") from e

    def _checked(self, what: str, obs: np.ndarray, reward: np.ndarray | None) -> np.ndarray:
        """Observations of the declared shape and finite values (and finite rewards), else a
        UserCodeError naming the task and the call."""
        for name, x in (("observation", obs), ("reward", reward)):
            if x is None:
                continue
            bad = ~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                task = self.tasks[i // self.envs_per_task]
                raise UserCodeError(f"family {self.family.name!r} ({self.family.env_id}): {what} returned a "
                                    f"non-finite {name} for task {dict(task.params)} (env {i % self.envs_per_task}, "
                                    f"episode step {int(self.elapsed.reshape(-1)[i])})")
        return obs

    def _as_tensor(self, x: Any, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device).reshape(self.batch_shape)

    def _truncated_now(self) -> torch.Tensor:
        return self._inner_truncated

    def close(self) -> None:
        self.vector.close()


def from_gymnasium(env_id: str, params: Mapping[str, Sequence[float]], setter: Setter | str | None = None,
                   **kwargs: Any) -> GymnasiumFamily:
    """A task family from a registered Gymnasium env with discrete actions.

    ``params`` maps each task parameter to its ``(low, high)`` range; ``setter`` says how a
    task's values reach the env (module docstring). Keyword options: ``name``,
    ``description``, ``defaults`` (a value per parameter; else the range's middle),
    ``integer`` (names of integer parameters), ``max_episode_steps`` (else the env's own
    limit), ``make_kwargs`` (fixed ``gymnasium.make`` keywords), ``ranges``, ``options``
    (extra keyword options of your registered factory, saved with runs so they reload).
    Register it to use it by name (CLI, saved runs)::

        register_family("my-family", lambda **opts: from_gymnasium("MyEnv-v0", {...}, **opts))
    """
    return GymnasiumFamily(env_id, params, setter, **kwargs)


# -- built-in instances ---------------------------------------------------------------------
def _acrobot_setter(env: gym.Env, p: dict[str, Any]) -> None:
    env.LINK_LENGTH_1, env.LINK_LENGTH_2 = p["length_1"], p["length_2"]
    env.LINK_MASS_1, env.LINK_MASS_2 = p["mass_1"], p["mass_2"]
    # Gymnasium derives nothing from these in its constructor, but the centres of mass sit at
    # half of each link (0.5 for the default length 1) and must follow the lengths
    env.LINK_COM_POS_1, env.LINK_COM_POS_2 = p["length_1"] / 2, p["length_2"] / 2


def acrobot_physics(*, max_episode_steps: int = 500, ranges: Mapping[str, Sequence[float]] | None = None
                    ) -> GymnasiumFamily:
    """``acrobot-physics``: Gymnasium's Acrobot-v1 with varied link lengths and masses."""
    return from_gymnasium(
        "Acrobot-v1", {"length_1": (0.5, 1.5), "length_2": (0.5, 1.5), "mass_1": (0.5, 1.5), "mass_2": (0.5, 1.5)},
        _acrobot_setter, name="acrobot-physics", max_episode_steps=max_episode_steps, ranges=ranges,
        defaults={"length_1": 1.0, "length_2": 1.0, "mass_1": 1.0, "mass_2": 1.0},
        description="Acrobot (Gymnasium) with varied link lengths and masses (centres of mass follow the lengths)")


def lunarlander_physics(*, max_episode_steps: int = 1000, ranges: Mapping[str, Sequence[float]] | None = None
                        ) -> GymnasiumFamily:
    """``lunarlander-physics``: LunarLander-v3 with varied gravity and wind (needs Box2D).

    LunarLander builds its Box2D world with the gravity in its constructor, so the values
    go to ``gymnasium.make`` (``setter="kwargs"``); wind is on, turbulence off.
    """
    try:
        import Box2D  # noqa: F401
    except ImportError:
        raise MissingExtra("family 'lunarlander-physics' needs Box2D: pip install 'metadqn[box2d]'") from None
    return from_gymnasium(
        "LunarLander-v3", {"gravity": (-11.99, -2.0), "wind_power": (0.0, 20.0)}, "kwargs",
        name="lunarlander-physics", max_episode_steps=max_episode_steps, ranges=ranges,
        defaults={"gravity": -10.0, "wind_power": 0.0}, make_kwargs={"enable_wind": True, "turbulence_power": 0.0},
        description="LunarLander (Gymnasium, Box2D) with varied gravity and wind power")


def _highway_setter(env: gym.Env, p: dict[str, Any]) -> None:
    env.configure({"lanes_count": int(p["lanes"]), "vehicles_density": float(p["density"]),
                   "reward_speed_range": [float(p["speed_limit"]) - 10.0, float(p["speed_limit"])],
                   "collision_reward": -float(p["safety"]) * 2.0 - 0.5})


def highway(*, env_id: str = "highway-fast-v0", max_episode_steps: int = 40,
            ranges: Mapping[str, Sequence[float]] | None = None) -> GymnasiumFamily:
    """``highway``: highway-env (optional extra ``metadqn[highway]``) with varied road knobs.

    The knobs go through highway-env's config: ``lanes`` -> ``lanes_count``, ``density`` ->
    ``vehicles_density``, ``speed_limit`` -> the top of ``reward_speed_range`` (speeds at or
    above it earn the full speed reward), ``safety`` -> a larger collision penalty. Road
    friction has no counterpart in highway-env's config and is left out. Works with
    ``highway-fast-v0``, ``merge-v0``, ``roundabout-v0`` (``env_id=``); slow (tens of steps/s).
    Episodes end at highway-env's own ``duration`` or after ``max_episode_steps``, whichever is first.
    """
    try:
        import highway_env  # noqa: F401
    except ImportError:
        raise MissingExtra("family 'highway' needs highway-env: pip install 'metadqn[highway]'") from None
    return from_gymnasium(
        env_id, {"lanes": (2, 4), "density": (0.5, 2.0), "speed_limit": (25.0, 35.0), "safety": (0.0, 1.0)},
        _highway_setter, name="highway", max_episode_steps=max_episode_steps, ranges=ranges, integer=("lanes",),
        options={"env_id": env_id},
        defaults={"lanes": 3, "density": 1.0, "speed_limit": 30.0, "safety": 0.25},
        description=f"highway-env {env_id} with varied lanes, traffic density, speed range and collision penalty")

