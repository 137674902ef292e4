"""Rollout workers: a slow simulator's environments stepped on Ray actors.

For a family made with :func:`~metadqn.families.from_gymnasium`, the ``tasks x envs``
environments are split into ``n`` contiguous shards, each stepped by one Ray actor (a
``SyncVectorEnv`` of its shard). The learner keeps everything else where it was: it picks
every environment's action in one network pass (the same ε-greedy draws as without workers),
keeps the replay, and sends only actions out and observations, rewards and flags back. So no
parameters need broadcasting, no actor acts with a stale policy, and with the same seed the
transitions are the same with 0, 1 or N workers (for environments that are deterministic given
their reset seed).

Fault tolerance: the learner records each environment's episode seed and the actions of its
current episode. When an actor dies, a new one is started, replays those episodes (reset with
the same seed, the same actions) and the call that failed is made again; the replay, the
learner and its checkpoints never lived in the actor. After ``max_restarts`` deaths of one
shard the run stops with the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..plugins import import_plugin, imported
from ..tasks import BatchedEnv, Task, TaskFamily
from ..tasks.gym_adapter import EnvFn, GymnasiumFamily, sync_vector
from .cluster import ScaleError, cluster_cpus, connect, require_ray


@dataclass(frozen=True)
class RolloutWorkers:
    """Where a ``from_gymnasium`` family's environments are stepped while meta-training."""

    n: int = 0                      # Ray actors (0: every environment in this process, no Ray)
    address: str | None = None      # Ray cluster to join ("auto", "HOST:PORT", "ray://HOST:10001"); None: local
    cpus_per_worker: float = 1.0    # CPUs Ray reserves for each actor (spreads actors over nodes)
    max_restarts: int = 3           # new actors per shard after deaths, then the run stops

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ScaleError(f"rollout workers must be >= 0, got {self.n}")
        if self.cpus_per_worker <= 0:
            raise ScaleError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.max_restarts < 0:
            raise ScaleError(f"max_restarts must be >= 0, got {self.max_restarts}")


def make_env(family: TaskFamily, tasks: Sequence[Task], envs_per_task: int, *, device: Any = "cpu",
             seed: int | None = None, workers: RolloutWorkers | None = None) -> BatchedEnv:
    """``family.make_batched(tasks, envs_per_task)``, stepped on ``workers`` when they are asked for."""
    if workers is None or workers.n == 0:
        return family.make_batched(tasks, envs_per_task, device=device, seed=seed)
    check_family(family)
    return family.make_batched(tasks, envs_per_task, device=device, seed=seed,
                               vector_env=lambda fam, fns, space: RayVector(fam, fns, space, workers))


def check_family(family: TaskFamily) -> None:
    """A ScaleError unless ``family`` can be stepped on rollout workers."""
    if not isinstance(family, GymnasiumFamily):
        raise ScaleError(f"family {family.name!r} steps all its tasks in one tensor operation in this process; "
                         "rollout workers are for families made with from_gymnasium (simulators stepped one by one)")


class _Actor:
    """One shard's environments (runs in a Ray worker process)."""

    def __init__(self, plugins: list[str], payload: bytes) -> None:
        import importlib

        import cloudpickle
        import gymnasium as gym
        for name in plugins:  # the user's families and env registrations, before their objects unpickle
            import_plugin(name)
        shard = cloudpickle.loads(payload)
        spec = shard["spec"]
        if spec is not None and isinstance(spec.entry_point, str):  # its package registers its own envs
            try:
                importlib.import_module(spec.entry_point.split(":")[0])
            except ImportError:
                pass
        if spec is not None and spec.id not in gym.registry:
            gym.registry[spec.id] = spec  # an env registered in the user's script
        self.vector = sync_vector(shard["family"], shard["fns"], shard["space"])

    def ready(self) -> int:
        import os
        return os.getpid()

    def reset(self, seeds: list[int], mask: np.ndarray) -> np.ndarray:
        obs, _ = self.vector.reset(seed=seeds, options={"reset_mask": mask})
        return np.asarray(obs, dtype=np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, _ = self.vector.step(actions)
        return np.asarray(obs, dtype=np.float32), np.asarray(reward), np.asarray(terminated), np.asarray(truncated)

    def restore(self, seeds: list[int], episodes: list[list[int]]) -> None:
        """Every environment back where a dead actor left it: reset with its episode's seed,
        then that episode's actions again."""
        self.vector.reset(seed=seeds, options={"reset_mask": np.ones(len(seeds), dtype=bool)})
        for env, actions in zip(self.vector.envs, episodes):
            for a in actions:
                env.step(a)

    def close(self) -> None:
        self.vector.close()


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = require_ray().remote(_Actor)
    return _ACTOR_CLASS


class RayVector:
    """A ``SyncVectorEnv``'s ``reset``/``step``/``close`` over shards stepped by Ray actors."""

    def __init__(self, family: GymnasiumFamily, fns: Sequence[EnvFn], space: Any, workers: RolloutWorkers) -> None:
        import cloudpickle
        import gymnasium as gym
        ray = connect(workers.address)
        n = min(workers.n, len(fns))
        available = cluster_cpus()
        if n * workers.cpus_per_worker > available:
            raise ScaleError(f"{n} rollout workers x {workers.cpus_per_worker:g} CPU need more than the "
                             f"{available:g} CPUs of the Ray cluster; ask for fewer or add nodes (ray start)")
        self.workers = workers
        self.n_envs = len(fns)
        self.bounds = [(int(s[0]), int(s[-1]) + 1) for s in np.array_split(np.arange(len(fns)), n)]
        try:
            spec = gym.spec(family.env_id)
        except gym.error.Error:
            spec = None
        self._payloads = [cloudpickle.dumps({"family": family, "fns": list(fns[lo:hi]), "space": space, "spec": spec})
                          for lo, hi in self.bounds]
        self._plugins = imported()
        self.actors: list[Any] = [None] * n
        self.restarts = [0] * n
        # what rebuilds a shard: each environment's episode seed and the actions of its episode
        self._seeds: list[int | None] = [None] * len(fns)
        self._episodes: list[list[int]] = [[] for _ in fns]
        for i in range(n):
            self.actors[i] = self._start(i)
        self._ray = ray

    def _start(self, i: int) -> Any:
        ray = require_ray()
        actor = _actor_class().options(num_cpus=self.workers.cpus_per_worker).remote(self._plugins, self._payloads[i])
        try:
            ray.get(actor.ready.remote())
        except ray.exceptions.RayTaskError as e:  # the user's env failed to build: that error, not Ray's
            raise e.as_instanceof_cause() from None
        return actor

    def _restart(self, i: int, cause: Exception) -> None:
        if self.restarts[i] >= self.workers.max_restarts:
            raise ScaleError(f"rollout worker {i} died {self.restarts[i] + 1} times (max_restarts="
                             f"{self.workers.max_restarts}); last cause: {cause}") from cause
        self.restarts[i] += 1
        lo, hi = self.bounds[i]
        self.actors[i] = self._start(i)
        if self._seeds[lo] is not None:
            self._ray.get(self.actors[i].restore.remote([int(s) for s in self._seeds[lo:hi]],
                                                        [list(e) for e in self._episodes[lo:hi]]))

    def _call(self, method: str, args: dict[int, tuple]) -> dict[int, Any]:
        """``actor.method(*args[i])`` on the shards in ``args`` in parallel; a dead actor is
        replaced and its call made again."""
        ray = self._ray
        pending = {i: getattr(self.actors[i], method).remote(*a) for i, a in args.items()}
        out: dict[int, Any] = {}
        while pending:
            i, ref = next(iter(pending.items()))
            try:
                out[i] = ray.get(ref)
                del pending[i]
            except ray.exceptions.RayTaskError as e:  # the user's env raised: that error, for the caller to name
                raise e.as_instanceof_cause() from None
            except ray.exceptions.RayActorError as e:
                self._restart(i, e)
                pending[i] = getattr(self.actors[i], method).remote(*args[i])
        return out

    def reset(self, seed: Sequence[int], options: dict[str, Any]) -> tuple[np.ndarray, dict]:
        mask = np.asarray(options["reset_mask"], dtype=bool)
        args = {i: ([int(s) for s in seed[lo:hi]], mask[lo:hi]) for i, (lo, hi) in enumerate(self.bounds)
                if mask[lo:hi].any()}
        parts = self._call("reset", args)
        obs = np.zeros((self.n_envs, *next(iter(parts.values())).shape[1:]), dtype=np.float32) if parts else None
        for i, (lo, hi) in enumerate(self.bounds):
            if i in parts:
                obs[lo:hi] = parts[i]
        for j in np.flatnonzero(mask):
            self._seeds[j], self._episodes[j] = int(seed[j]), []
        return obs, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        parts = self._call("step", {i: (actions[lo:hi],) for i, (lo, hi) in enumerate(self.bounds)})
        for j, a in enumerate(actions.tolist()):
            self._episodes[j].append(a)
        obs, reward, terminated, truncated = (np.concatenate([parts[i][f] for i in range(len(self.bounds))])
                                              for f in range(4))
        return obs, reward, terminated, truncated, {}

    def close(self) -> None:
        ray = self._ray
        for actor in self.actors:
            if actor is not None:
                ray.kill(actor)
        self.actors = [None] * len(self.actors)


__all__ = ["RayVector", "RolloutWorkers", "check_family", "make_env"]
