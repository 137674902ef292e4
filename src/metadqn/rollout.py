"""Acting in batched environments: epsilon-greedy actions, collecting transitions into a
per-instance replay, and greedy evaluation. Policies are given as ``q_fn(obs) -> Q``
over observations ``[task, env, *obs]``, so the same code serves one network, one network
per task, or any adapter's per-instance state (see :mod:`metadqn.adaptation`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import vmap

from .nets import q_values
from .replay import TaskReplay
from .tasks import Task, TaskFamily

QFn = Callable[[torch.Tensor], torch.Tensor]  # obs [task, env, *obs] -> Q [task, env, A]


def params_q(net: nn.Module, params: Mapping[str, torch.Tensor], per_task: bool = False) -> QFn:
    """The Q-function of ``params``: shared by every task, or (``per_task``) with a leading
    task axis matching the observations', evaluated with ``vmap``."""
    if per_task:
        return lambda obs: vmap(lambda p, o: q_values(net, p, o))(dict(params), obs)
    return lambda obs: q_values(net, params, obs)


def epsilon_greedy(q: torch.Tensor, epsilon: float | torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Actions ``[...]`` from Q-values ``[..., n_actions]``: greedy, or uniform with prob. epsilon."""
    greedy = q.argmax(-1)
    if isinstance(epsilon, (int, float)) and epsilon <= 0:
        return greedy
    explore = torch.rand(greedy.shape, generator=generator, device=q.device) < epsilon
    random = torch.randint(0, q.shape[-1], greedy.shape, generator=generator, device=q.device)
    return torch.where(explore, random, greedy)


def linear_schedule(start: float, end: float, fraction: float, progress: float) -> float:
    """``start`` -> ``end`` linearly over the first ``fraction`` of training, then ``end``."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(1.0, progress / fraction)


@torch.no_grad()
def greedy_returns(family: TaskFamily, tasks: Sequence[Task], q_fn: QFn, *, episodes: int = 10,
                   device: str | torch.device = "cpu", seed: int = 0, epsilon: float = 0.0) -> torch.Tensor:
    """Undiscounted return of the greedy (or epsilon-greedy) policy: ``[task, episodes]``.

    Runs ``episodes`` environments per task in one batched env and records each one's
    first episode.
    """
    env = family.make_batched(tasks, episodes, device=device, seed=seed)
    generator = torch.Generator(device=env.device).manual_seed(seed + 1)
    obs = env.reset()
    finished = torch.zeros(env.batch_shape, dtype=torch.bool, device=env.device)
    returns = torch.zeros(env.batch_shape, device=env.device)
    for _ in range(env.max_episode_steps):
        actions = epsilon_greedy(q_fn(obs), epsilon, generator)
        out = env.step(actions)
        returns = torch.where(out.done & ~finished, out.episode_return, returns)
        finished |= out.done
        obs = out.obs
    return returns


@torch.no_grad()
def collect(env: Any, buffer: TaskReplay, q_fn: QFn, *, epsilon: float, steps: int,
            generator: torch.Generator | None = None, clear: bool = True) -> float:
    """Fresh episodes in every ``[task, env]`` of ``env``, ``steps`` steps of epsilon-greedy
    actions, stored with one buffer row per ``[task, env]`` instance (the buffer is cleared
    first unless ``clear=False``; the last step is marked as an episode boundary, so n-step
    returns never run into the next call's data). Returns the mean return of the episodes
    that finished."""
    if clear:
        buffer.clear()
    obs = env.reset()
    n = env.n_tasks * env.envs_per_task
    total = torch.zeros((), device=obs.device)
    count = torch.zeros((), device=obs.device)
    for step in range(steps):
        actions = epsilon_greedy(q_fn(obs), epsilon, generator)
        out = env.step(actions)
        boundary = out.done | (step == steps - 1)
        buffer.add(obs.reshape(n, 1, *obs.shape[2:]), actions.reshape(n, 1), out.reward.reshape(n, 1),
                   out.next_obs.reshape(n, 1, *obs.shape[2:]), out.terminated.reshape(n, 1),
                   boundary.reshape(n, 1))
        total += (out.episode_return * out.done).sum()
        count += out.done.sum()
        obs = out.obs
    return float(total / count.clamp_min(1))


__all__ = ["QFn", "collect", "epsilon_greedy", "greedy_returns", "linear_schedule", "params_q"]
