"""Functional DQN pieces: TD loss (target network, Double DQN, Huber/MSE, n-step), acting,
greedy evaluation. Everything takes parameters as a dict of tensors, so the same functions
run for one network, inside ``torch.func.grad`` and under ``vmap`` over a task axis.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from .nets import Params, q_values
from .replay import Batch, TaskReplay
from .tasks import Task, TaskFamily

LOSSES = ("huber", "mse")


def td_loss(net: nn.Module, params: Mapping[str, torch.Tensor], target_params: Mapping[str, torch.Tensor] | None,
            batch: Batch, double: bool = True, loss: str = "huber") -> torch.Tensor:
    """Mean TD error of ``params`` on ``batch`` (any leading axes; no task axis inside vmap).

    target = returns + discount * Q_target(next_obs, a*), with a* = argmax of the online
    network (Double DQN) or of the target network. ``target_params=None`` uses ``params``
    itself (detached) as the target. The target never carries gradient.
    """
    use_double = double and target_params is not None
    if use_double:  # one online pass over [obs; next_obs]
        both = q_values(net, params, torch.cat((batch.obs, batch.next_obs), dim=0))
        q_all, next_online = both[: batch.obs.shape[0]], both[batch.obs.shape[0]:]
    else:
        q_all = q_values(net, params, batch.obs)
    q = q_all.gather(-1, batch.action.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        next_q = q_values(net, params if target_params is None else target_params, batch.next_obs)
        if use_double:
            next_v = next_q.gather(-1, next_online.argmax(-1, keepdim=True)).squeeze(-1)
        else:
            next_v = next_q.max(-1).values
        target = batch.returns + batch.discount * next_v
    if loss == "huber":
        return F.smooth_l1_loss(q, target.detach())
    if loss == "mse":
        return F.mse_loss(q, target.detach())
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def task_q_values(net: nn.Module, params: Mapping[str, torch.Tensor], obs: torch.Tensor,
                  per_task: bool) -> torch.Tensor:
    """Q-values for observations ``[task, env, *obs]``.

    ``per_task=True``: ``params`` carry a leading task axis (adapted parameters), evaluated
    with ``vmap``; otherwise one set of parameters serves every task.
    """
    if per_task:
        return vmap(lambda p, o: q_values(net, p, o))(dict(params), obs)
    return q_values(net, params, obs)


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
def greedy_returns(family: TaskFamily, tasks: Sequence[Task], net: nn.Module, params: Params,
                   episodes: int = 10, per_task: bool = False, device: str | torch.device = "cpu",
                   seed: int = 0, epsilon: float = 0.0) -> torch.Tensor:
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
        actions = epsilon_greedy(task_q_values(net, params, obs, per_task), epsilon, generator)
        out = env.step(actions)
        returns = torch.where(out.done & ~finished, out.episode_return, returns)
        finished |= out.done
        obs = out.obs
    return returns


@torch.no_grad()
def collect(env: Any, buffer: TaskReplay, q_fn: Callable[[torch.Tensor], torch.Tensor], epsilon: float,
            steps: int, generator: torch.Generator | None = None, clear: bool = True) -> float:
    """Fresh episodes in every ``[task, env]`` of ``env``, ``steps`` steps of epsilon-greedy
    actions on ``q_fn(obs [task, env, ...]) -> [task, env, A]``, stored with one buffer row
    per ``[task, env]`` instance (the buffer is cleared first unless ``clear=False``; the last
    step is marked as an episode boundary, so n-step returns never run into the next call's
    data). Returns the mean return of the episodes that finished."""
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
