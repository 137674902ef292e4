"""An inference baseline: a permutation-invariant set encoder reads the support transitions
and outputs the task code c directly (PEARL's context encoder, MQL's context), no gradient
steps. Q(s, a; c) and the model head m(s, a; c) → (r̂, Δŝ) are those of context MAML, so the
two methods differ only in how c is found: by inference here, by k gradient steps there.

Encoder: φ([s, one-hot a, r, s′ − s, not-terminated]) per transition (an MLP), pooled by the
mean and the max over the set (mean pooling alone averages away the few informative
transitions), then a linear map to c. Meta-trained end to end on the outer loss of context
MAML: TD of Q(·; c) on query data + ``model_weight`` × the decoder's model loss with c.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import Params, init_params
from ..replay import Batch
from ..td import TDLoss
from .base import State, SupportSpec
from .context import ContextModelAdapter, ModelHead

PREFIX = "encoder."


class SetEncoder(nn.Module):
    """c = W [mean_i φ(xᵢ); max_i φ(xᵢ)] + b over the transitions xᵢ of one instance's support,
    evaluated on a parameter dict (keys ``encoder.*``)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, code: int, hidden: tuple[int, ...],
                 head: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.obs_dim = int(torch.Size(obs_shape).numel())
        self.n_actions, self.code = int(n_actions), int(code)
        self.layers = nn.ModuleList()
        width = 2 * self.obs_dim + self.n_actions + 2
        for h in hidden:
            self.layers.append(nn.Linear(width, h))
            width = h
        self.head = nn.ModuleList()  # ρ: hidden layers after pooling (DeepSets' ρ(pool φ(x)))
        width *= 2
        for h in head:
            self.head.append(nn.Linear(width, h))
            width = h
        self.out = nn.Linear(width, self.code)

    def init_params(self, seed: int) -> Params:
        return {PREFIX + k: v for k, v in init_params(self, seed).items()}

    def encode(self, params: Params, batch: Batch) -> torch.Tensor:
        """The code ``[code]`` of one instance's transitions ``batch`` (``[batch, ...]``)."""
        obs = batch.obs.reshape(batch.obs.shape[0], -1)
        nxt = batch.next_obs.reshape(obs.shape)
        one_hot = (batch.action.unsqueeze(-1) == torch.arange(self.n_actions, device=obs.device)).to(obs.dtype)
        x = torch.cat((obs, one_hot, batch.returns.unsqueeze(-1), nxt - obs, (batch.discount > 0).to(obs.dtype)
                       .unsqueeze(-1)), dim=1)
        for i in range(len(self.layers)):
            x = F.relu(F.linear(x, params[f"{PREFIX}layers.{i}.weight"], params[f"{PREFIX}layers.{i}.bias"]))
        pooled = torch.cat((x.mean(0), x.max(0).values))
        for i in range(len(self.head)):
            pooled = F.relu(F.linear(pooled, params[f"{PREFIX}head.{i}.weight"], params[f"{PREFIX}head.{i}.bias"]))
        return F.linear(pooled, params[f"{PREFIX}out.weight"], params[f"{PREFIX}out.bias"])


class EncoderAdapter(ContextModelAdapter):
    """Adapts by inference: c = encoder(support), then (with ``step_sizes`` ``[K, d]``, K > 0)
    k context steps on the support model loss refine it, as in context MAML — an amortised
    first guess that gradient steps correct. With K = 0 the step count is ignored."""

    uses_steps = False

    def __init__(self, name: str, net: nn.Module, model: ModelHead, encoder: SetEncoder, params: Params, *,
                 td: TDLoss, support: SupportSpec, step_sizes: torch.Tensor | None = None, obs_weight: float = 1.0,
                 model_weight: float = 1.0, first_order: bool = False) -> None:
        super().__init__(name, net, model, params, step_sizes=torch.zeros(0) if step_sizes is None else step_sizes,
                         td=td, support=support, obs_weight=obs_weight, model_weight=model_weight,
                         first_order=first_order)
        self.encoder = encoder

    @property
    def default_steps(self) -> int:
        return int(self.step_sizes.shape[0])

    def adapt(self, state: State, support: Batch, steps: int) -> State:
        code = self.encoder.encode(self.params, support)
        return {"context": self._descend(code, support, steps if self.default_steps else 0)}

    def detached(self) -> "EncoderAdapter":
        return EncoderAdapter(self.name, self.net, self.model, self.encoder,
                              {k: v.detach() for k, v in self.params.items()}, td=self.td, support=self.support,
                              step_sizes=self.step_sizes.detach(), obs_weight=self.obs_weight,
                              model_weight=self.model_weight, first_order=self.first_order)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": "encoder", "pooling": "mean+max",
                "step_size_mean": float(self.step_sizes.detach().mean()) if self.default_steps else None}


__all__ = ["EncoderAdapter", "SetEncoder"]
