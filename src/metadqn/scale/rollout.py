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

import itertools
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..plugins import import_plugin, imported
from ..tasks import TaskFamily
from ..tasks.history import WrappedFamily
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


def check_family(family: TaskFamily) -> None:
    """A ScaleError unless ``family`` can be stepped on rollout workers."""
    if not isinstance(family, GymnasiumFamily):
        raise ScaleError(f"family {family.name!r} steps all its tasks in one tensor operation in this process; "
                         "rollout workers are for families made with from_gymnasium (simulators stepped one by one)")


@contextmanager
def rollout_workers(family: TaskFamily, workers: RolloutWorkers | None) -> Iterator[None]:
    """Inside, every ``family.make_batched`` (training, evaluation, baselines) steps its envs on
    one pool of ``workers`` actors, started once; nothing changes when ``workers`` is None or 0.
    A wrapped family (``with_time``, ``with_history``) steps its base family's envs: those go to the pool."""
    while isinstance(family, WrappedFamily):
        family = family.base
    if workers is None or workers.n == 0 or isinstance(getattr(family, "vector_env", None), WorkerPool):
        yield  # nothing asked for, or already inside a pool for this family
        return
    check_family(family)
    pool = WorkerPool(workers)
    previous = family.vector_env
    family.vector_env = pool
    try:
        yield
    finally:
        family.vector_env = previous
        pool.close()


class _Actor:
    """Shards of environments (runs in a Ray worker process), one per batched env that uses
    this actor, by the env's key."""

    def __init__(self) -> None:
        self.vectors: dict[int, Any] = {}

    def ready(self) -> int:
        import os
        return os.getpid()

    def setup(self, key: int, plugins: list[str], payload: bytes) -> None:
        import importlib

        import cloudpickle
        import gymnasium as gym
        for name in plugins:  # the user's families and env registrations, before their objects unpickle
            import_plugin(name)  # once per process: a second call finds the module imported
        shard = cloudpickle.loads(payload)
        spec = shard["spec"]
        if spec is not None and isinstance(spec.entry_point, str):  # its package registers its own envs
            try:
                importlib.import_module(spec.entry_point.split(":")[0])
            except ImportError:
                pass
        if spec is not None and spec.id not in gym.registry:
            gym.registry[spec.id] = spec  # an env registered in the user's script
        self.close(key)
        self.vectors[key] = sync_vector(shard["family"], shard["fns"], shard["space"])

    def reset(self, key: int, seeds: list[int], mask: np.ndarray) -> np.ndarray:
        obs, _ = self.vectors[key].reset(seed=seeds, options={"reset_mask": mask})
        return np.asarray(obs, dtype=np.float32)

    def step(self, key: int, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, _ = self.vectors[key].step(actions)
        return np.asarray(obs, dtype=np.float32), np.asarray(reward), np.asarray(terminated), np.asarray(truncated)

    def restore(self, key: int, seeds: list[int], episodes: list[list[int]]) -> None:
        """Every environment back where a dead actor left it: reset with its episode's seed,
        then that episode's actions again."""
        vector = self.vectors[key]
        vector.reset(seed=seeds, options={"reset_mask": np.ones(len(seeds), dtype=bool)})
        for env, actions in zip(vector.envs, episodes):
            for a in actions:
                env.step(a)

    def close(self, key: int) -> None:
        vector = self.vectors.pop(key, None)
        if vector is not None:
            vector.close()


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        _ACTOR_CLASS = require_ray().remote(_Actor)
    return _ACTOR_CLASS


class WorkerPool:
    """``workers.n`` Ray actors, started once; called as a ``vector_env`` factory it lends
    them to one batched env (:class:`RayVector`)."""

    def __init__(self, workers: RolloutWorkers) -> None:
        self.ray = connect(workers.address)
        available = cluster_cpus()
        if workers.n * workers.cpus_per_worker > available:
            raise ScaleError(f"{workers.n} rollout workers x {workers.cpus_per_worker:g} CPU need more than the "
                             f"{available:g} CPUs of the Ray cluster; ask for fewer or add nodes (ray start)")
        self.workers = workers
        self.actors = [self._start() for _ in range(workers.n)]
        self.ray.get([a.ready.remote() for a in self.actors])
        self.restarts = [0] * workers.n
        self.live: weakref.WeakSet[RayVector] = weakref.WeakSet()  # envs whose shards the actors hold
        self._keys = itertools.count()

    def _start(self) -> Any:
        return _actor_class().options(num_cpus=self.workers.cpus_per_worker).remote()

    def replace(self, i: int, cause: Exception) -> None:
        """A new actor in place of dead actor ``i``, holding again the shard of every live env
        (a ScaleError after ``max_restarts``)."""
        if self.restarts[i] >= self.workers.max_restarts:
            raise ScaleError(f"rollout worker {i} died {self.restarts[i] + 1} times (max_restarts="
                             f"{self.workers.max_restarts}); last cause: {cause}") from cause
        self.restarts[i] += 1
        self.actors[i] = self._start()
        for vector in list(self.live):
            vector.rebuild(i)

    def __call__(self, family: GymnasiumFamily, fns: Sequence[EnvFn], space: Any) -> "RayVector":
        return RayVector(self, family, fns, space)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


class RayVector:
    """A ``SyncVectorEnv``'s ``reset``/``step``/``close`` over shards stepped by a pool's actors."""

    def __init__(self, pool: WorkerPool, family: GymnasiumFamily, fns: Sequence[EnvFn], space: Any) -> None:
        import cloudpickle
        import gymnasium as gym
        self.pool = pool
        self._ray = pool.ray
        self.key = next(pool._keys)
        n = min(len(pool.actors), len(fns))
        self.n_envs = len(fns)
        self.bounds = [(int(s[0]), int(s[-1]) + 1) for s in np.array_split(np.arange(len(fns)), n)]
        try:
            spec = gym.spec(family.env_id)
        except gym.error.Error:
            spec = None
        self._payloads = [cloudpickle.dumps({"family": family, "fns": list(fns[lo:hi]), "space": space, "spec": spec})
                          for lo, hi in self.bounds]
        self._plugins = imported()
        # what rebuilds a shard: each environment's episode seed and the actions of its episode
        self._seeds: list[int | None] = [None] * len(fns)
        self._episodes: list[list[int]] = [[] for _ in fns]
        self.closed = False
        pool.live.add(self)  # from here on, an actor that dies is rebuilt with this env's shard
        self._call("setup", {i: (self._plugins, self._payloads[i]) for i in range(n)})

    @property
    def actors(self) -> list[Any]:
        return self.pool.actors[: len(self.bounds)]

    @property
    def restarts(self) -> list[int]:
        return self.pool.restarts[: len(self.bounds)]

    def rebuild(self, i: int) -> None:
        """Shard ``i`` again on the pool's (new) actor ``i``, where the dead one left it."""
        if i >= len(self.bounds):
            return
        lo, hi = self.bounds[i]
        actor = self.pool.actors[i]
        self._get(actor.setup.remote(self.key, self._plugins, self._payloads[i]))
        if self._seeds[lo] is not None:
            self._get(actor.restore.remote(self.key, [int(s) for s in self._seeds[lo:hi]],
                                           [list(e) for e in self._episodes[lo:hi]]))

    def _get(self, ref: Any) -> Any:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as e:  # the user's env raised: that error, for the caller to name
            raise e.as_instanceof_cause() from None

    def _call(self, method: str, args: dict[int, tuple]) -> dict[int, Any]:
        """``actor.method(*args[i])`` on the shards in ``args`` in parallel; a dead actor is
        replaced (its shard rebuilt and replayed) and its call made again."""
        pending = {i: getattr(self.pool.actors[i], method).remote(self.key, *a) for i, a in args.items()}
        out: dict[int, Any] = {}
        while pending:
            i, ref = next(iter(pending.items()))
            try:
                out[i] = self._get(ref)
                del pending[i]
            except self._ray.exceptions.RayActorError as e:
                self.pool.replace(i, e)  # rebuilds every live env's shard, this one's included
                pending[i] = getattr(self.pool.actors[i], method).remote(self.key, *args[i])
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
        self.pool.live.discard(self)
        self.closed = True
        if self.pool.actors:
            self._ray.get([a.close.remote(self.key) for a in self.actors])

    def __del__(self) -> None:  # an env dropped without close(): free its shards (no wait)
        try:
            if not self.closed:
                for a in self.actors:
                    a.close.remote(self.key)
        except Exception:
            pass


__all__ = ["RayVector", "RolloutWorkers", "WorkerPool", "check_family", "rollout_workers"]
