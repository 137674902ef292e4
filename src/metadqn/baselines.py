"""The evaluation's references and baselines, each with every setting explicit:

- R_random and R_oracle per task (exact where the family knows them; else a Monte-Carlo
  estimate of the random policy, and per-task DQNs trained side by side);
- the multi-task DQN (one network trained on all training tasks) and DQN from scratch,
  each turned into a :class:`~metadqn.adapters.GradientAdapter` whose step size and
  exploration are tuned on *training* tasks.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .adaptation import adaptation_curve
from .adapters import GradientAdapter, SupportSpec
from .dqn_agent import DQN, DQNConfig
from .meta.maml import InnerLoop
from .nets import NetSpec, Params
from .rollout import greedy_returns
from .seeding import derive_seed
from .tasks import Task, TaskFamily
from .td import TDLoss


def random_returns(family: TaskFamily, tasks: Sequence[Task], *, episodes: int = 50, seed: int = 0,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """R_random per task: exact where the family knows it, else a Monte-Carlo estimate."""
    exact = [family.random_return(t) for t in tasks]
    if all(r is not None for r in exact):
        return np.asarray(exact, dtype=float)
    n_actions = int(family.action_space.n)
    est = greedy_returns(family, tasks, lambda obs: torch.zeros(*obs.shape[:2], n_actions, device=obs.device),
                         episodes=episodes, device=device, seed=seed, epsilon=1.0)
    return est.mean(-1).cpu().numpy().astype(float)


def oracle_returns(family: TaskFamily, tasks: Sequence[Task], *, dqn_steps: int = 30_000, eval_episodes: int = 10,
                   seed: int = 0, device: str | torch.device = "cpu",
                   progress: bool | None = None) -> tuple[np.ndarray, bool]:
    """(R_oracle per task, whether it is exact): exact where the family knows it; otherwise the
    greedy return of a DQN trained on that task alone for ``dqn_steps`` env steps (keeping its
    best evaluation), one network per task, all trained side by side."""
    exact = [family.oracle_return(t) for t in tasks]
    if all(r is not None for r in exact):
        return np.asarray(exact, dtype=float), True
    agent = DQN(family, list(tasks), total_steps=dqn_steps, seed=seed, device=str(device), independent=True,
                eval_every=max(1000, dqn_steps // 10))
    agent.learn(progress=progress)
    returns = agent.evaluate(episodes=eval_episodes, seed=derive_seed(seed, "oracle-eval")).mean(1)
    return returns.cpu().numpy().astype(float), False


def train_multitask(family: TaskFamily, train_tasks: Sequence[Task], *, net: NetSpec, env_steps: int,
                    envs_per_task: int = 8, batch_size: int = 32, target_update: int = 200,
                    buffer_per_env: int = 2000, eval_episodes: int = 2, seed: int = 0,
                    device: str | torch.device = "cpu", progress: bool | None = None) -> Params:
    """The multi-task DQN baseline: one Q-network trained by DQN on every training task
    jointly for ``env_steps`` env steps; one update per vector step of all tasks' envs."""
    if env_steps < 1:
        raise ValueError("the multi-task baseline needs env_steps >= 1 (the learner has not been meta-trained)")
    per_iter = len(train_tasks) * envs_per_task
    # its settings are the evaluation's (EvalConfig.multitask_*) on DQNConfig's defaults, not a family's preset
    agent = DQN(family, list(train_tasks), config=DQNConfig(), net=net, n_envs=envs_per_task, total_steps=env_steps,
                updates_per_step=1.0 / per_iter, learning_starts=min(env_steps // 10, 20 * per_iter),
                buffer_size=max(1000, envs_per_task * buffer_per_env), batch_size=batch_size,
                target_update=target_update, eval_every=max(per_iter, env_steps // 10), eval_episodes=eval_episodes,
                seed=seed, device=str(device))
    agent.learn(progress=progress)
    return {k: v.detach().clone() for k, v in agent.params.items()}


def finetune_adapter(name: str, net: nn.Module, params: Params, *, lr: float, epsilon: float, td: TDLoss,
                     batch: int) -> GradientAdapter:
    """A baseline that adapts by plain DQN gradient steps on every parameter from ``params``."""
    return GradientAdapter(name, net, params, inner=InnerLoop(lr=lr), td=td,
                           support=SupportSpec(epsilon=epsilon, batch=batch, n_step=td.n_step, gamma=td.gamma))


def tune(family: TaskFamily, make: Callable[[float, float], GradientAdapter], tasks: Sequence[Task], *,
         lrs: Sequence[float], epsilons: Sequence[float], steps: Sequence[int], runs_per_task: int = 2,
         episodes: int = 1, eval_episodes: int = 3, seed: int = 0,
         device: str | torch.device = "cpu") -> tuple[GradientAdapter, dict[str, float]]:
    """The (step size, epsilon) of ``make`` with the best mean greedy return over k > 0 after
    ``episodes`` episodes on ``tasks`` (training tasks: never tune on test tasks)."""
    ks = [k for k in steps if k > 0] or list(steps)
    best: tuple[float, GradientAdapter | None, dict[str, float]] = (-math.inf, None, {})
    for lr in lrs:
        for eps in epsilons:
            adapter = make(lr, eps)
            curve = adaptation_curve(adapter, family, tasks, runs_per_task=runs_per_task, episodes=episodes, steps=ks,
                                     eval_episodes=eval_episodes, seed=seed, device=device)
            score = float(np.mean([curve[k].mean().item() for k in ks]))
            if math.isfinite(score) and score > best[0]:
                best = (score, adapter, {"lr": lr, "epsilon": eps, "train_return": score})
    if best[1] is None:
        raise FloatingPointError("every step size in the grid gave a non-finite return")
    return best[1], best[2]


__all__ = ["finetune_adapter", "oracle_returns", "random_returns", "train_multitask", "tune"]
