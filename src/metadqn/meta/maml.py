"""MAML's inner loop for DQN, written with torch.func.

:func:`gradient_steps` is the inner loop itself for any loss of a parameter dict: k steps
θ ← θ − α ∇L(θ; batch) on the parameters ``keys`` names, second order (the result stays
differentiable with respect to θ and a learned α) or first order (the inner gradient is
detached). :func:`adapt` is that loop on the TD loss of a Q-network, :func:`adapt_tasks`
its vmapped form over a task axis, :func:`maml_loss` the outer objective's per-task terms.
Meta-SGD is the same loop with α a dict of per-element step sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import torch
from torch import nn
from torch.func import grad, vmap

from ..nets import Params
from ..replay import Batch
from ..td import td_loss

StepSize = float | Mapping[str, torch.Tensor]  # a scalar, or per-element step sizes (Meta-SGD)


@dataclass(frozen=True)
class InnerLoop:
    """How the inner loop adapts: step size α (scalar or Meta-SGD per-element tensors),
    number of steps, which parameters move (None: all), first- or second-order, and the
    safeguard (keep θ' only where the support loss fell; else θ)."""

    lr: StepSize
    steps: int = 1
    keys: tuple[str, ...] | None = None
    first_order: bool = False
    safeguard: bool = False

    def with_steps(self, steps: int) -> "InnerLoop":
        return replace(self, steps=steps)


def gradient_steps(loss_fn: Callable[[Params, Batch], torch.Tensor], params: Params, batch: Batch,
                   inner: InnerLoop) -> Params:
    """θ' after ``inner.steps`` steps of gradient descent on ``loss_fn(θ, batch)`` for ONE task
    (``batch`` has no task axis). Parameters outside ``inner.keys`` pass through unchanged."""
    keys = list(params) if inner.keys is None else list(inner.keys)
    fixed = {k: v for k, v in params.items() if k not in keys}
    fast = {k: params[k] for k in keys}
    step = grad(lambda f: loss_fn({**fixed, **f}, batch))
    start = fast
    for _ in range(inner.steps):
        grads = step(fast)
        if inner.first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        fast = {k: fast[k] - _lr(inner.lr, k) * grads[k] for k in fast}
    if inner.safeguard and inner.steps:
        fell = loss_fn({**fixed, **fast}, batch) < loss_fn({**fixed, **start}, batch)
        fast = {k: torch.where(fell, fast[k], start[k]) for k in fast}
    return {**fixed, **fast}


def _lr(lr: StepSize, name: str) -> torch.Tensor | float:
    return lr if isinstance(lr, (int, float)) else lr[name]


def adapt(net: nn.Module, params: Params, support: Batch, inner: InnerLoop, *,
          target: Params | None = None, double: bool = True, loss: str = "huber") -> Params:
    """θ' of ONE task after the inner loop on the TD loss of ``support`` (``target``: the TD
    target network; None: the inner parameters themselves, detached)."""
    def inner_loss(p: Params, batch: Batch) -> torch.Tensor:
        return td_loss(net, p, batch, target=target, double=double, loss=loss)
    return gradient_steps(inner_loss, params, support, inner)


def adapt_tasks(net: nn.Module, params: Params, support: Batch, inner: InnerLoop, *,
                target: Params | None = None, double: bool = True, loss: str = "huber") -> Params:
    """:func:`adapt` for every task at once: ``support`` is ``[task, batch, ...]``; the result
    is θ' with a leading task axis. One vmapped call, no Python loop over tasks."""
    return vmap(lambda b: adapt(net, params, b, inner, target=target, double=double, loss=loss))(support)


def maml_loss(net: nn.Module, params: Params, support: Batch, query: Batch, inner: InnerLoop, *,
              inner_target: Params | None = None, outer_target: Params | None = None, double: bool = True,
              loss: str = "huber") -> tuple[torch.Tensor, Params]:
    """The MAML outer objective's terms for a batch of tasks: ``(query TD loss per task [task],
    adapted params [task, ...])``. The caller weights and averages the per-task losses."""
    def one(s: Batch, q: Batch) -> tuple[torch.Tensor, Params]:
        adapted = adapt(net, params, s, inner, target=inner_target, double=double, loss=loss)
        return td_loss(net, adapted, q, target=outer_target, double=double, loss=loss), adapted
    return vmap(one)(support, query)


__all__ = ["InnerLoop", "StepSize", "adapt", "adapt_tasks", "gradient_steps", "maml_loss"]
