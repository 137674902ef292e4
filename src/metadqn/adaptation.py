"""The one adaptation path: collect a new task's data, adapt, act. Meta-training
(:mod:`metadqn.meta.iteration`), ``MAMLDQN.adapt``, ``metadqn adapt`` and ``metadqn
evaluate`` all call these functions with an :class:`~metadqn.adapters.Adapter`.

For every task instance at once:

1. collect ``episodes`` episodes with the adapter's prior state, epsilon-greedy with its
   ``support.epsilon`` (:func:`collect_support`);
2. sample ``support.batch × episodes`` transitions per instance (:func:`sample_support`);
3. adapt: ``k`` steps of the adapter on that batch, vmapped over instances (:func:`adapt_batch`);
4. act with the adapted state (:func:`instance_q`), e.g. greedily (:func:`adaptation_curve`).
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
from torch.func import vmap

from .adapters.base import Adapter, State, SupportSpec
from .replay import Batch, TaskReplay
from .rollout import QFn, collect, greedy_returns
from .seeding import derive_seed
from .tasks import BatchedEnv, Task, TaskFamily


LAYOUTS = ("shared", "task", "instance")


def instance_q(adapter: Adapter, state: State, *, layout: str) -> QFn:
    """Q-function over observations ``[task, env, *obs]`` for states laid out as
    ``"shared"`` (one state for every env), ``"task"`` (a leading axis matching the
    observations' task axis) or ``"instance"`` (a leading ``task * env`` axis, task-major)."""
    if layout == "shared":
        return lambda obs: adapter.q_values(state, obs)
    if layout == "task":
        return lambda obs: vmap(adapter.q_values)(state, obs)
    if layout != "instance":
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")

    def q_fn(obs: torch.Tensor) -> torch.Tensor:
        t, e = obs.shape[:2]
        flat = obs.reshape(t * e, 1, *obs.shape[2:])
        return vmap(adapter.q_values)(state, flat).reshape(t, e, -1)
    return q_fn


def collect_support(env: BatchedEnv, adapter: Adapter, buffer: TaskReplay, *, episodes: int,
                    generator: torch.Generator) -> float:
    """Step 1: ``episodes`` fresh episodes per instance of ``env`` with the adapter's prior
    state into ``buffer`` (one row per instance); returns their mean return."""
    if episodes < 1:
        raise ValueError(f"support episodes must be >= 1, got {episodes}")
    prior = {k: v.detach() for k, v in adapter.prior().items()}
    return collect(env, buffer, instance_q(adapter, prior, layout="shared"), epsilon=adapter.support.epsilon,
                   steps=episodes * env.max_episode_steps, generator=generator)


def sample_support(buffer: TaskReplay, spec: SupportSpec, *, episodes: int, generator: torch.Generator) -> Batch:
    """Step 2: ``spec.batch × episodes`` transitions per instance, ``[instance, batch, ...]``
    (``spec.batch == 0``: every transition the episodes hold, once)."""
    return buffer.sample(spec.batch * episodes, spec.n_step, spec.gamma, generator=generator)


def broadcast(state: State, n: int) -> State:
    """One state as ``n`` identical per-instance states (a leading axis, no copy)."""
    return {k: v.unsqueeze(0).expand(n, *v.shape) for k, v in state.items()}


def choose_batch(adapter: Adapter, support: Batch, steps: int, keep: int = 1) -> State:
    """Every instance's :meth:`~metadqn.adapters.Adapter.choice` from the prior, narrowed to
    ``keep`` options (leading instance axis; {} for adapters that decide nothing), vmapped."""
    prior = adapter.prior()
    return vmap(lambda batch: adapter.choice(prior, batch, steps, keep))(support)


def adapt_batch(adapter: Adapter, support: Batch, steps: int, start: State | None = None,
                chosen: State | None = None) -> State:
    """Step 3: the adapted state of every instance (leading instance axis), vmapped.

    ``start=None`` adapts from the prior (shared by every instance, and differentiable with
    respect to it during meta-training), taking the per-instance decisions ``chosen``
    (:func:`choose_batch`) where given; otherwise from per-instance states. Zero steps leave
    the state as it is, except for adapters that infer it from the data (``uses_steps=False``).
    """
    n = support.obs.shape[0]
    unchanged = steps == 0 and adapter.uses_steps
    if start is None:
        prior = adapter.prior()
        if unchanged:
            return broadcast(prior, n)
        return vmap(lambda batch, c: adapter.adapt({**prior, **c}, batch, steps))(support, chosen or {})
    if unchanged:
        return start
    return vmap(lambda state, batch: adapter.adapt(state, batch, steps))(start, support)


def check_view(adapter: Adapter, family: TaskFamily) -> None:
    """A clear error where ``adapter``'s Q-network reads other observations than ``family``
    gives — e.g. a learner with ``time_feature`` (it acts in ``with_time(family)``: pass
    ``learner.family``) given the family it was made from."""
    want = getattr(getattr(adapter, "net", None), "obs_shape", None)
    got = tuple(family.observation_space.shape)
    if want is not None and tuple(want) != got:
        hint = (" — its learner reads t / H too (time_feature): pass learner.family, its view of the family"
                if len(want) == len(got) and want[:-1] == got[:-1] and want[-1] == got[-1] + 1 else "")
        raise ValueError(f"{adapter.name}'s Q-network reads observations of shape {list(want)}, but family "
                         f"{family.name!r} gives {list(got)}{hint}")


def new_task_data(family: TaskFamily, tasks: Sequence[Task], *, runs_per_task: int, episodes: int,
                  adapter: Adapter | None, seed: int = 0, device: str | torch.device = "cpu",
                  extra_capacity: int = 0) -> tuple[TaskReplay, torch.Generator]:
    """Step 1 for ``runs_per_task`` fresh instances per task: their support replay (rows
    task-major, room for ``extra_capacity`` more steps) and the generator that sampling
    continues with. ``adapter=None`` acts uniformly at random: with the same seed, the very
    data every method whose ``support.epsilon`` is 1 collects (the information limit is
    computed from it). ``episodes=0`` leaves the replay empty."""
    if adapter is not None:
        check_view(adapter, family)
    env = family.make_batched(tasks, runs_per_task, device=device, seed=derive_seed(seed, "support-env"))
    buf = TaskReplay(len(tasks) * runs_per_task, 1, episodes * family.max_episode_steps + extra_capacity,
                     env.obs_shape, device)
    gen = torch.Generator(device=env.device).manual_seed(derive_seed(seed, "support"))
    if episodes == 0:
        return buf, gen
    if adapter is None:
        n_actions = int(family.action_space.n)
        collect(env, buf, lambda obs: torch.zeros(*obs.shape[:2], n_actions, device=obs.device), epsilon=1.0,
                steps=episodes * family.max_episode_steps, generator=gen)
    else:
        collect_support(env, adapter, buf, episodes=episodes, generator=gen)
    return buf, gen


def adapt_instances(adapter: Adapter, family: TaskFamily, tasks: Sequence[Task], *, runs_per_task: int,
                    episodes: int, steps: Sequence[int], seed: int = 0,
                    device: str | torch.device = "cpu") -> dict[int, State]:
    """Adapt ``runs_per_task`` independent instances per task (new data each); returns, for
    each k in ``steps``, states with a leading ``task * runs_per_task`` axis (task-major)."""
    if any(k < 0 for k in steps):
        raise ValueError(f"adaptation step counts must be >= 0, got {list(steps)}")
    adapter = adapter.detached()
    buf, gen = new_task_data(family, tasks, runs_per_task=runs_per_task, episodes=episodes, adapter=adapter,
                             seed=seed, device=device)
    support = sample_support(buf, adapter.support, episodes=episodes, generator=gen)
    out: dict[int, State] = {}
    current, done = None, 0
    for k in sorted(set(steps)):
        if adapter.resumable:  # k steps = the steps so far and k - done more
            current = adapt_batch(adapter, support, k - done, current)
            done = k
        else:  # a choice or an inference comes first: every k starts from the prior
            current = adapt_batch(adapter, support, k)
        current = {name: v.detach() for name, v in current.items()}
        out[k] = current
    return out


def adaptation_curve(adapter: Adapter, family: TaskFamily, tasks: Sequence[Task], *, runs_per_task: int,
                     episodes: int, steps: Sequence[int], eval_episodes: int = 5, seed: int = 0,
                     device: str | torch.device = "cpu") -> dict[int, torch.Tensor]:
    """Greedy return ``[task, run]`` after k adaptation steps, for each k in ``steps``."""
    adapted = adapt_instances(adapter, family, tasks, runs_per_task=runs_per_task, episodes=episodes, steps=steps,
                              seed=seed, device=device)
    instances = [t for t in tasks for _ in range(runs_per_task)]
    out = {}
    for k, state in adapted.items():  # instance i plays its own task: the eval env's task axis
        r = greedy_returns(family, instances, instance_q(adapter, state, layout="task"), episodes=eval_episodes,
                           device=device, seed=derive_seed(seed, "greedy-eval"))
        out[k] = r.mean(-1).view(len(tasks), runs_per_task)
    return out


@torch.no_grad()
def _greedy_step(adapter: Adapter, state: State, obs: torch.Tensor) -> torch.Tensor:
    return instance_q(adapter, state, layout="task")(obs).argmax(-1)


def online_curve(adapter: Adapter, family: TaskFamily, tasks: Sequence[Task], *, runs_per_task: int, episodes: int,
                 steps: int, every: int = 1, seed: int = 0, warm: bool = False,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, float]:
    """Online adaptation: after the same support data as :func:`adaptation_curve` (``episodes``
    may be 0), each instance plays one greedy episode and, every ``every`` env steps,
    re-adapts from its prior with ``steps`` steps on all its data so far (support + this
    episode); ``warm``: through :meth:`Adapter.readapt`, which may also start from the
    previous re-adaptation's end. Returns the episode returns ``[task, run]`` and the
    adaptation cost in ms per env step (all instances together)."""
    if every < 1:
        raise ValueError(f"online adaptation needs every >= 1 env steps, got {every}")
    adapter = adapter.detached()
    horizon = family.max_episode_steps
    buf, gen = new_task_data(family, tasks, runs_per_task=runs_per_task, episodes=episodes, adapter=adapter,
                             seed=seed, device=device, extra_capacity=horizon)
    instances = [t for t in tasks for _ in range(runs_per_task)]
    n = len(instances)
    env = family.make_batched(instances, 1, device=device, seed=derive_seed(seed, "greedy-eval"))

    def readapt(previous: State | None) -> State:
        if buf.steps == 0:  # no data yet (no support episode): the prior
            return broadcast(adapter.prior(), n)
        support = sample_support(buf, adapter.support, episodes=max(episodes, 1), generator=gen)
        if warm and previous is not None:
            new = vmap(lambda state, batch: adapter.readapt(state, batch, steps))(previous, support)
        else:
            new = adapt_batch(adapter, support, steps)
        return {k: v.detach() for k, v in new.items()}

    state, cost = readapt(None), 0.0
    obs = env.reset()
    finished = torch.zeros(n, 1, dtype=torch.bool, device=env.device)
    returns = torch.zeros(n, 1, device=env.device)
    for t in range(horizon):
        actions = _greedy_step(adapter, state, obs)
        out = env.step(actions)
        buf.add(obs, actions, out.reward, out.next_obs, out.terminated, out.done)
        returns = torch.where(out.done & ~finished, out.episode_return, returns)
        finished |= out.done
        obs = out.obs
        if (t + 1) % every == 0 and not bool(finished.all()):
            t0 = time.perf_counter()
            state = readapt(state)
            cost += time.perf_counter() - t0
    return returns.view(len(tasks), runs_per_task), 1000 * cost / horizon


__all__ = ["LAYOUTS", "adapt_batch", "adapt_instances", "adaptation_curve", "broadcast", "check_view", "choose_batch",
           "collect_support", "instance_q", "new_task_data", "online_curve", "sample_support"]
