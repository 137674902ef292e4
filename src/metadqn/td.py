"""The TD loss of a Q-network given as a parameter dict: target network, Double DQN,
Huber or MSE, n-step returns (the replay computes them; see :class:`~metadqn.replay.Batch`).

A pure function of tensors, so the same code runs for one network, inside
``torch.func.grad`` (MAML's inner loop) and under ``vmap`` over a task axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .nets import q_values
from .replay import Batch

LOSSES = ("huber", "mse")


@dataclass(frozen=True)
class TDLoss:
    """Which TD loss: n-step returns and discount (used when sampling the batch), Double DQN
    targets, and the error function."""

    n_step: int = 1
    gamma: float = 0.99
    double: bool = True
    loss: str = "huber"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {self.n_step}")


def td_loss(net: nn.Module, params: Mapping[str, torch.Tensor], batch: Batch, *,
            target: Mapping[str, torch.Tensor] | None = None, double: bool = True,
            loss: str = "huber") -> torch.Tensor:
    """Mean TD error of ``params`` on ``batch`` (any leading axes; no task axis inside vmap).

    target value = returns + discount * Q_target(next_obs, a*), with a* = argmax of the online
    network (Double DQN) or of the target network. ``target=None`` uses ``params`` itself
    (detached) as the target network. The target never carries gradient.
    """
    use_double = double and target is not None
    if use_double:  # one online pass over [obs; next_obs]
        both = q_values(net, params, torch.cat((batch.obs, batch.next_obs), dim=0))
        q_all, next_online = both[: batch.obs.shape[0]], both[batch.obs.shape[0]:]
    else:
        q_all = q_values(net, params, batch.obs)
    q = q_all.gather(-1, batch.action.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        next_q = q_values(net, params if target is None else target, batch.next_obs)
        if use_double:
            next_v = next_q.gather(-1, next_online.argmax(-1, keepdim=True)).squeeze(-1)
        else:
            next_v = next_q.max(-1).values
        value = batch.returns + batch.discount * next_v
    if loss == "huber":
        return F.smooth_l1_loss(q, value.detach())
    if loss == "mse":
        return F.mse_loss(q, value.detach())
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


__all__ = ["LOSSES", "TDLoss", "td_loss"]
