"""Adaptation by gradient steps on the TD loss of the support data.

One class serves every gradient-based method; they differ only in where θ₀ comes from and
which settings they use:

- MAML / FOMAML / Reptile: meta-learned θ₀, the meta-training step size, all parameters;
- head or context MAML (CAVIA-style): ``InnerLoop(keys=...)`` moves the output layer or the
  task-context vector alone;
- Meta-SGD: ``InnerLoop(lr=...)`` holds learned per-element step sizes;
- multitask fine-tuning and DQN from scratch (the baselines): θ₀ from a multi-task DQN or
  a fresh initialisation, with a step size and exploration tuned on training tasks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..meta.maml import InnerLoop, adapt
from ..nets import Params, q_values
from ..replay import Batch, Query, query_parts
from ..td import TDLoss, td_loss
from .base import Adapter, State, SupportSpec


class GradientAdapter(Adapter):
    """θ' = θ₀ − α ∇ L_TD(θ; support), ``steps`` times, on the parameters ``inner.keys``.

    ``target`` is the inner loss's TD target network (None: θ itself, detached).
    """

    def __init__(self, name: str, net: nn.Module, params: Params, *, inner: InnerLoop, td: TDLoss,
                 support: SupportSpec, target: Params | None = None) -> None:
        self.name, self.net, self.params = name, net, params
        self.inner, self.td, self.support, self.target = inner, td, support, target

    @property
    def default_steps(self) -> int:
        return self.inner.steps

    @property
    def resumable(self) -> bool:
        return not self.inner.safeguard  # the safeguard compares the end with the start of each call

    def prior(self) -> State:
        return dict(self.params)

    def adapt(self, state: State, support: Batch, steps: int) -> State:
        return adapt(self.net, state, support, self.inner.with_steps(steps), target=self.target,
                     double=self.td.double, loss=self.td.loss)

    def q_values(self, state: State, obs: torch.Tensor) -> torch.Tensor:
        return q_values(self.net, state, obs)

    def outer_loss(self, state: State, query: Batch | Query, *, target: Params | None) -> torch.Tensor:
        """Meta-training's loss of an adapted state: the query TD loss (``target``: the meta
        target network; None: the adapted parameters themselves)."""
        td_batch, _ = query_parts(query)
        return td_loss(self.net, state, td_batch, target=target, double=self.td.double, loss=self.td.loss)

    def detached(self) -> "GradientAdapter":
        lr = self.inner.lr if isinstance(self.inner.lr, (int, float)) else _detach(self.inner.lr)
        return GradientAdapter(self.name, self.net, _detach(self.params), inner=replace(self.inner, lr=lr),
                               td=self.td, support=self.support,
                               target=None if self.target is None else _detach(self.target))

    def describe(self) -> dict[str, Any]:
        lr = self.inner.lr
        return {**super().describe(), "kind": "gradient",
                "inner_lr": lr if isinstance(lr, (int, float)) else "learned per element",
                "adapted_parameters": "all" if self.inner.keys is None else list(self.inner.keys),
                "first_order": self.inner.first_order, "safeguard": self.inner.safeguard, "td": vars(self.td).copy(),
                "inner_target": "adapted" if self.target is None else "meta"}


def _detach(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


__all__ = ["GradientAdapter"]
