"""MAML for DQN, written with torch.func: the inner loop of every task runs at once under
``vmap``; second order by differentiating through ``grad``, first order by detaching the
inner gradient; Meta-SGD learns one inner step size per parameter element.

The pieces compose: :func:`adapt` is the inner loop for one task and works on any
``QNet``-style network with a parameter dict; :func:`adapt_tasks` is its vmapped form;
:func:`maml_loss` is the outer objective Σᵢ wᵢ L_TD(θ'ᵢ; queryᵢ) / Σᵢ wᵢ.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn
from torch.func import grad, vmap

from ..dqn import td_loss
from ..nets import Params
from ..replay import Batch

InnerLR = float | Mapping[str, torch.Tensor]  # a scalar, or per-element step sizes (Meta-SGD)


def adapt(net: nn.Module, params: Params, support: Batch, inner_lr: InnerLR, steps: int = 1,
          first_order: bool = False, target_params: Params | None = None, double: bool = True,
          loss: str = "huber", keys: Sequence[str] | None = None) -> Params:
    """θ' after ``steps`` gradient steps θ ← θ − α ∇θ L_TD(θ; support) on ONE task.

    ``support`` has no task axis (``[batch, ...]``). ``target_params`` is the TD target
    network (None: the current inner parameters, detached). With ``first_order`` the inner
    gradient is detached, so d θ'/d θ = I (FOMAML); otherwise the result stays
    differentiable with respect to ``params`` (and to a learned ``inner_lr``).
    ``keys`` names the parameters the inner loop changes (None: all of them); the others
    pass through unchanged, e.g. only a task context (CAVIA) or only the output layer.
    """
    keys = list(params) if keys is None else list(keys)
    fixed = {k: v for k, v in params.items() if k not in keys}

    def inner_loss(fast: Params) -> torch.Tensor:
        return td_loss(net, {**fixed, **fast}, target_params, support, double, loss)

    fast = {k: params[k] for k in keys}
    for _ in range(steps):
        grads = grad(inner_loss)(fast)
        if first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        fast = {k: fast[k] - _lr(inner_lr, k) * grads[k] for k in fast}
    return {**fixed, **fast}


def _lr(inner_lr: InnerLR, name: str) -> torch.Tensor | float:
    return inner_lr if isinstance(inner_lr, (int, float)) else inner_lr[name]


def adapt_tasks(net: nn.Module, params: Params, support: Batch, inner_lr: InnerLR, steps: int = 1,
                first_order: bool = False, target_params: Params | None = None, double: bool = True,
                loss: str = "huber", keys: Sequence[str] | None = None) -> Params:
    """:func:`adapt` for every task at once: ``support`` is ``[task, batch, ...]``; the result
    is θ' with a leading task axis. One vmapped call, no Python loop over tasks."""
    def one(batch: Batch) -> Params:
        return adapt(net, params, batch, inner_lr, steps, first_order, target_params, double, loss, keys)
    return vmap(one)(support)


def maml_loss(net: nn.Module, params: Params, support: Batch, query: Batch, inner_lr: InnerLR,
              steps: int = 1, first_order: bool = False, weights: torch.Tensor | None = None,
              inner_target: Params | None = None, outer_target: Params | None = None,
              double: bool = True, loss: str = "huber",
              keys: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor, Params]:
    """The MAML outer objective for a batch of tasks.

    Returns ``(weighted mean loss, per-task query losses [task], adapted params [task, ...])``.
    ``weights`` ``[task]`` (default uniform) weight each task's query loss.
    """
    def one(s: Batch, q: Batch) -> tuple[torch.Tensor, Params]:
        adapted = adapt(net, params, s, inner_lr, steps, first_order, inner_target, double, loss, keys)
        return td_loss(net, adapted, outer_target, q, double, loss), adapted

    per_task, adapted = vmap(one)(support, query)
    if weights is None:
        return per_task.mean(), per_task, adapted
    return (weights * per_task).sum() / weights.sum(), per_task, adapted
