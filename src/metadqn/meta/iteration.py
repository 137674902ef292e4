"""One meta-iteration of MAML-DQN (and FOMAML, Meta-SGD, Reptile), top to bottom.

For every training task x ``envs_per_task`` adaptation instances at once:

1. **support**: each instance collects ``support_episodes`` episodes with θ (epsilon-greedy,
   ``eps_support``) — the same path and budget a new task gets at test time
   (:mod:`metadqn.adaptation`); with ``support_episodes_max``, the iteration's number of
   episodes cycles through support_episodes..support_episodes_max;
2. **inner loop**: θ'ᵢ = θ − α ∇L_TD(θ; supportᵢ), ``inner_steps`` times, vmapped over instances
   (``algo="context"``: only a task context moves, on a model loss — adapters/context.py;
   ``algo="encoder"``: a set encoder infers the context instead — adapters/encoder.py;
   ``algo="blr"``: the context is a linear model's posterior mean, solved — adapters/blr.py);
3. **query**: each instance collects ``query_episodes`` episodes with its own θ'ᵢ, epsilon-greedy
   with ``eps_query`` (default 1.0, uniformly random: with a near-greedy query policy the TD
   outer loss only checks the actions that policy takes and never rewards a better argmax);
4. **outer update** (``outer_steps`` times on fresh minibatches): Adam (β = ``outer_lr``, less
   ``outer_lr_decay`` of it linearly over the run) on Σᵢ wᵢ Lᵢ / Σᵢ wᵢ, Lᵢ the adapter's outer
   loss of θ'ᵢ on queryᵢ (TD; context: TD + model loss) — second order through the inner
   gradient for ``maml``/``metasgd``, first order for ``fomaml`` — or Reptile's step toward the
   mean θ'ᵢ; the inner loop's costly non-differentiable choice (context MAML's start among
   ``context_starts``) is narrowed once, in step 2, to the ``start_shortlist`` best (at least the
   ``context_pool`` ends it pools), and every update chooses among those only;
5. every ``target_update`` iterations the meta target network copies θ.

The outer loss is, by default, DQN's own 1-step TD loss of θ'ᵢ against the meta target
network (``n_step=1``, ``outer_target="meta"``): off-policy, it asks θ'ᵢ for the task's
optimal Q-values even though the query data are random. Monte-Carlo targets (``n_step=0``)
would ask for the random policy's Q-values instead (measured worse: benchmarks/RESULTS.md).

:func:`meta_iteration` is a function of explicit inputs. It returns the iteration's metrics
and advances ``state`` in place (the parameters, the optimizer's moments and the random
generator are torch objects that are updated in place; nothing else carries over).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from ..adaptation import adapt_batch, choose_batch, collect_support, instance_q, sample_support
from ..adapters import (Adapter, BLRContextAdapter, ContextModelAdapter, EncoderAdapter, GradientAdapter, LinearModel,
                        ModelHead, SetEncoder, SupportSpec)
from ..nets import Params
from ..replay import Batch, TaskReplay
from ..rollout import collect
from ..tasks import BatchedEnv
from ..td import TDLoss
from .config import CONTEXT_ALGOS, MetaConfig
from .maml import InnerLoop
from .reptile import reptile_direction
from .weighting import task_weights


@dataclass
class MetaState:
    """What meta-training changes: θ, Meta-SGD's step sizes, the meta target network, the
    outer optimizer, the random generator of sampling and exploration, the iteration count."""

    params: Params
    inner_lrs: Params | None
    target: Params
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    iteration: int = 0


@dataclass
class Buffers:
    """Per-instance replays ``[instance, slot, 1, ...]`` of the support and query episodes."""

    support: TaskReplay
    query: TaskReplay


def horizon_n_step(n: int, horizon: int) -> int:
    """An n-step setting resolved: 0 means Monte-Carlo (n = the episode horizon)."""
    return n or horizon


def inner_keys(cfg: MetaConfig, params: Params) -> tuple[str, ...] | None:
    """The parameters the inner loop moves: all (None), the output layer, or the context."""
    if cfg.inner_params == "context":
        return ("context",)
    if cfg.inner_params == "head":
        last = max(int(k.split(".")[1]) for k in params if k.startswith("fcs."))
        return (f"fcs.{last}.weight", f"fcs.{last}.bias")
    return None


def make_adapter(net: nn.Module, state: MetaState, cfg: MetaConfig, horizon: int,
                 model: ModelHead | LinearModel | None = None, encoder: SetEncoder | None = None) -> Adapter:
    """The adapter meta-training trains, over the live meta-parameters (differentiable):
    a :class:`ContextModelAdapter` for ``algo="context"`` (needs the model head), an
    :class:`EncoderAdapter` for ``algo="encoder"`` (model head and encoder), a
    :class:`BLRContextAdapter` for ``algo="blr"`` (its linear model), else a
    :class:`GradientAdapter`."""
    outer_n = horizon_n_step(cfg.n_step, horizon)
    if cfg.algo in CONTEXT_ALGOS:  # a model loss on 1-step transitions, TD outside
        shared = dict(td=TDLoss(n_step=outer_n, gamma=cfg.gamma, double=cfg.double, loss=cfg.loss),
                      support=SupportSpec(epsilon=cfg.eps_support, batch=cfg.support_batch, n_step=1, gamma=cfg.gamma),
                      model_weight=cfg.model_weight)
        if cfg.algo == "blr":  # its model's observation weight is fixed when the model is built
            if not isinstance(model, LinearModel):
                raise ValueError("the blr algorithm needs its linear model")
            return BLRContextAdapter(cfg.algo, net, model, state.params, **shared)
        shared["obs_weight"] = cfg.model_obs_weight
        if cfg.algo == "encoder":
            if model is None or encoder is None:
                raise ValueError("the encoder algorithm needs its model head and set encoder")
            steps = None if state.inner_lrs is None else state.inner_lrs["context"]
            return EncoderAdapter(cfg.algo, net, model, encoder, state.params, step_sizes=steps,
                                  first_order=cfg.first_order, **shared)
        if model is None or state.inner_lrs is None:
            raise ValueError("the context algorithm needs its model head and learned step sizes")
        return ContextModelAdapter(cfg.algo, net, model, state.params, step_sizes=state.inner_lrs["context"],
                                   first_order=cfg.first_order, pool=cfg.pooled_ends, **shared)
    inner_n = outer_n if cfg.inner_n_step == -1 else horizon_n_step(cfg.inner_n_step, horizon)
    lr: float | Params = state.inner_lrs if state.inner_lrs is not None else cfg.inner_lr
    return GradientAdapter(
        cfg.algo, net, state.params,
        inner=InnerLoop(lr=lr, steps=cfg.inner_steps, keys=inner_keys(cfg, state.params),
                        first_order=cfg.first_order),
        td=TDLoss(n_step=inner_n, gamma=cfg.gamma, double=cfg.double, loss=cfg.loss),
        support=SupportSpec(epsilon=cfg.eps_support, batch=cfg.support_batch, n_step=inner_n, gamma=cfg.gamma),
        target=state.target if cfg.inner_target == "meta" else None)


def instance_weights(per_instance: torch.Tensor, cfg: MetaConfig, n_tasks: int,
                     user: Sequence[float] | None = None) -> torch.Tensor:
    """Task weights wᵢ ``[task * envs_per_task]`` (mean 1 over tasks; see meta.weighting)."""
    by_task = per_instance.detach().view(n_tasks, cfg.envs_per_task).mean(1)
    w = task_weights(user if user is not None else cfg.task_weights, by_task, n_tasks, per_instance.device)
    return w.repeat_interleave(cfg.envs_per_task)


def meta_iteration(state: MetaState, *, net: nn.Module, env: BatchedEnv, buffers: Buffers, cfg: MetaConfig,
                   model: ModelHead | LinearModel | None = None, encoder: SetEncoder | None = None) -> dict[str, Any]:
    """Steps 1–5 of the module docstring once; returns the iteration's metrics."""
    horizon, gen = env.max_episode_steps, state.generator
    adapter = make_adapter(net, state, cfg, horizon, model, encoder)
    # 1-2: support data and the inner loop, through the same path as test-time adaptation
    episodes = cfg.support_episodes_at(state.iteration)
    support_return = collect_support(env, adapter, buffers.support, episodes=episodes, generator=gen)
    support = sample_support(buffers.support, adapter.support, episodes=episodes, generator=gen)
    # the inner loop's costly choice (context MAML's start) narrowed once per iteration to the
    # start_shortlist best; every adaptation of the iteration chooses among those only
    chosen = choose_batch(adapter.detached(), support, cfg.inner_steps, keep=max(cfg.start_shortlist, cfg.pooled_ends))
    adapted = {k: v.detach() for k, v in adapt_batch(adapter.detached(), support, cfg.inner_steps,
                                                     chosen=chosen).items()}
    # 3: query data with each instance's θ'ᵢ
    query_return = collect(env, buffers.query, instance_q(adapter, adapted, layout="instance"), epsilon=cfg.eps_query,
                           steps=cfg.query_episodes * horizon, generator=gen, clear=not cfg.query_replay)
    # 4: outer updates
    outer_n = horizon_n_step(cfg.n_step, horizon)
    outer_target = state.target if cfg.outer_target == "meta" else None
    user_weights = None if isinstance(cfg.task_weights, str) else cfg.task_weights
    n_tasks = env.n_tasks
    task_targets = task_vectors(env, cfg) if cfg.task_loss_weight > 0 else None
    for group in state.optimizer.param_groups:  # β of this iteration (outer_lr_decay; a function of the count)
        group["lr"] = cfg.outer_lr_at(state.iteration)
    for update in range(cfg.outer_steps):
        if update:  # further meta-updates on fresh minibatches of the same episodes
            support = sample_support(buffers.support, adapter.support, episodes=episodes, generator=gen)
        query = buffers.query.sample_query(cfg.query_batch, outer_n, cfg.gamma, generator=gen)
        if cfg.support_prefix_min:
            support = support_prefix(support, cfg.support_prefix_min, generator=gen)
        state.optimizer.zero_grad(set_to_none=True)
        if cfg.algo == "reptile":
            with torch.no_grad():
                per_instance = vmap(lambda p, q: adapter.outer_loss(p, q, target=outer_target))(adapted, query)
            weights = instance_weights(per_instance, cfg, n_tasks, user_weights)
            for k, d in reptile_direction(state.params, adapted, weights).items():
                state.params[k].grad = d
        else:
            per_instance = outer_losses(adapter, support, query, steps=cfg.inner_steps, target=outer_target,
                                        task=task_targets, task_weight=cfg.task_loss_weight, chosen=chosen)
            weights = instance_weights(per_instance, cfg, n_tasks, user_weights)
            ((weights * per_instance).sum() / weights.sum()).backward()
        loss_value = float(((weights * per_instance).sum() / weights.sum()).detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"meta-loss became {loss_value} at iteration {state.iteration}; "
                                     "lower inner_lr/outer_lr or check the family's rewards")
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(state.optimizer.param_groups[0]["params"], cfg.grad_clip)
        state.optimizer.step()
    # 5: the meta target network
    state.iteration += 1
    if state.iteration % cfg.target_update == 0:
        with torch.no_grad():
            for k, v in state.params.items():
                state.target[k].copy_(v)
    metrics: dict[str, Any] = {"query_loss": loss_value, "support_return": support_return,
                               "query_return": query_return, "support_episodes": episodes}
    if state.inner_lrs is not None:
        metrics["inner_lr_mean"] = float(torch.cat([v.detach().flatten() for v in state.inner_lrs.values()]).mean())
    return metrics


def support_prefix(support: Batch, shortest: int, *, generator: torch.Generator) -> Batch:
    """The first m transitions of every instance's ``support`` (held oldest first), m uniform
    in ``shortest``..all (``MetaConfig.support_prefix_min``); all of it where it is shorter."""
    n = support.obs.shape[1]
    if shortest >= n:
        return support
    m = int(torch.randint(shortest, n + 1, (1,), generator=generator, device=generator.device))
    return Batch(*(x[:, :m] for x in support))


def task_vectors(env: BatchedEnv, cfg: MetaConfig) -> torch.Tensor:
    """Each instance's scaled task parameters ``[task * envs_per_task, P]`` (task-major), the
    targets of the task-inference loss."""
    vec = torch.as_tensor(np.stack([env.family.task_vector(t) for t in env.tasks]), dtype=torch.float32,
                          device=env.device)
    return vec.repeat_interleave(cfg.envs_per_task, 0)


def outer_losses(adapter: Adapter, support: Any, query: Any, *, steps: int, target: Params | None,
                 task: torch.Tensor | None = None, task_weight: float = 0.0,
                 chosen: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Each instance's outer loss ``[instance]`` after ``steps`` adaptation steps on its support,
    differentiable through the adapter's own :meth:`~metadqn.adapters.Adapter.adapt` (the
    function test-time adaptation calls); with ``task`` (``[instance, P]``), plus ``task_weight``
    × the adapter's task-inference loss of the adapted state; with ``chosen`` (per-instance
    :meth:`~metadqn.adapters.Adapter.choice`, :func:`~metadqn.adaptation.choose_batch`), the
    inner loop decides among the options left there instead of among all."""
    prior = adapter.prior()

    def one(s: Any, q: Any, y: torch.Tensor | None, c: dict[str, torch.Tensor]) -> torch.Tensor:
        state = adapter.adapt({**prior, **c}, s, steps)
        loss = adapter.outer_loss(state, q, target=target)
        return loss if y is None else loss + task_weight * adapter.task_loss(state, y)
    return vmap(one, in_dims=(0, 0, None if task is None else 0, 0))(support, query, task, chosen or {})


__all__ = ["Buffers", "MetaState", "horizon_n_step", "inner_keys", "instance_weights", "make_adapter",
           "meta_iteration", "outer_losses", "support_prefix", "task_vectors"]
