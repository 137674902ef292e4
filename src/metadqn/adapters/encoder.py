"""An inference baseline: a permutation-invariant set encoder reads the support transitions
and outputs the task code c directly (PEARL's context encoder, MQL's context), no gradient
steps. Q(s, a; c) and the model head m(s, a; c) → (r̂, Δŝ) are those of context MAML, so the
two methods differ only in how c is found: by inference here, by k gradient steps there.

Encoder: φ([s, one-hot a, r, s′ − s, not-terminated]) per transition (an MLP), pooled over
the set, then a linear map to c. Two poolings (``encoder_pooling``):

- ``mean+max``: the mean and the max of φ over the set (mean pooling alone averages away the
  few informative transitions).
- ``bayes``: every transition is read as ``m`` noisy *linear measurements* of a latent task
  vector z ∈ R^L — yⱼ = wⱼᵀ z + noise with precision λⱼ, where (wⱼ, yⱼ, λⱼ) are outputs of φ —
  and the set is pooled by the exact Gaussian posterior over z (Bayesian linear regression
  from a learned Gaussian prior): precision Λ = Λ₀ + Σ λⱼ wⱼwⱼᵀ, mean μ = Λ⁻¹(Λ₀μ₀ + Σ λⱼyⱼwⱼ);
  the pooled features are [μ, log √diag Λ⁻¹]. Evidence adds up (more transitions sharpen
  the posterior, the order never matters), and constraints that each transition only
  narrows to a line of the latent space intersect — how a reward reading that fixes only
  a distance to the goal, or one arm's payoff, is combined. PEARL's product of Gaussians is
  the case wⱼ = a unit vector; ALPaCA adapts by the same closed-form regression on learned
  features.

Meta-trained end to end on the outer loss of context MAML: TD of Q(·; c) on query data +
``model_weight`` × the decoder's model loss with c.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..meta.config import ENCODER_POOLINGS as POOLINGS
from ..nets import Params, init_params
from ..replay import Batch
from ..td import TDLoss
from .base import State, SupportSpec
from .context import ContextModelAdapter, ModelHead, action_one_hot, observation_rows, observation_width

PREFIX = "encoder."


class SetEncoder(nn.Module):
    """c = ρ(pool_i φ(xᵢ)) over the transitions xᵢ of one instance's support (pool: ``mean+max``
    or ``bayes``, see the module's docstring), evaluated on a parameter dict (keys ``encoder.*``)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, code: int, hidden: tuple[int, ...],
                 head: tuple[int, ...] = (), *, pooling: str = "mean+max", latent: int = 16,
                 measurements: int = 2, newest: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"encoder pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "bayes" and (latent < 1 or measurements < 1):
            raise ValueError(f"bayes pooling needs latent >= 1 and measurements >= 1, got {latent}, {measurements}")
        self.newest = bool(newest)
        self.obs_dim = observation_width(obs_shape, self.newest)
        self.n_actions, self.code = int(n_actions), int(code)
        self.pooling, self.latent, self.measurements = pooling, int(latent), int(measurements)
        self.layers = nn.ModuleList()
        width = 2 * self.obs_dim + self.n_actions + 2
        for h in hidden:
            self.layers.append(nn.Linear(width, h))
            width = h
        if pooling == "bayes":  # φ's measurements (w [m, L], y [m], raw precision [m]) and the prior over z
            self.measure = nn.Linear(width, self.measurements * (self.latent + 2))
            self.prior_mean = nn.Parameter(torch.zeros(self.latent))
            self.prior_log_precision = nn.Parameter(torch.zeros(self.latent))
            width = self.latent
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
        obs = observation_rows(batch.obs, self.newest)
        nxt = observation_rows(batch.next_obs, self.newest)
        one_hot = action_one_hot(batch.action, self.n_actions, obs.dtype)
        x = torch.cat((obs, one_hot, batch.returns.unsqueeze(-1), nxt - obs, (batch.discount > 0).to(obs.dtype)
                       .unsqueeze(-1)), dim=1)
        for i in range(len(self.layers)):
            x = F.relu(F.linear(x, params[f"{PREFIX}layers.{i}.weight"], params[f"{PREFIX}layers.{i}.bias"]))
        if self.pooling == "bayes":
            pooled = self._posterior(params, x)
        else:
            pooled = torch.cat((x.mean(0), x.max(0).values))
        for i in range(len(self.head)):
            pooled = F.relu(F.linear(pooled, params[f"{PREFIX}head.{i}.weight"], params[f"{PREFIX}head.{i}.bias"]))
        return F.linear(pooled, params[f"{PREFIX}out.weight"], params[f"{PREFIX}out.bias"])

    def _posterior(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """[μ, log σ] of the Gaussian posterior over z given the measurements of φ's outputs ``x``."""
        m = F.linear(x, params[f"{PREFIX}measure.weight"], params[f"{PREFIX}measure.bias"])
        m = m.reshape(x.shape[0] * self.measurements, self.latent + 2)
        m = m.double()  # an L x L solve: float64 costs nothing and keeps Cholesky stable where float32 fails
        w, y, precision = m[:, :self.latent], m[:, self.latent], F.softplus(m[:, self.latent + 1])
        prior_precision = params[f"{PREFIX}prior_log_precision"].double().exp()
        lam = torch.diag(prior_precision) + (w * precision.unsqueeze(-1)).T @ w
        eta = prior_precision * params[f"{PREFIX}prior_mean"].double() + (w * (precision * y).unsqueeze(-1)).sum(0)
        chol = torch.linalg.cholesky(lam)
        mean = torch.cholesky_solve(eta.unsqueeze(-1), chol).squeeze(-1)
        var = torch.cholesky_inverse(chol).diagonal()
        return torch.cat((mean, 0.5 * var.log())).to(x.dtype)


class EncoderAdapter(ContextModelAdapter):
    """Adapts by inference: c = encoder(support), then (with ``step_sizes`` ``[K, d]``, K > 0)
    k context steps on the support model loss refine it, as in context MAML — an amortised
    first guess that gradient steps correct; with learned starts (``params["context_starts"]``)
    the refinement also runs from each and the end that fits the support best is kept. With
    K = 0 the step count is ignored."""

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
        return {"context": self._best_descent(self._fresh_starts(support), support, self._refining(steps),
                                              state.get("shortlist"))}

    def choice(self, state: State, support: Batch, steps: int, keep: int = 1) -> State:
        return self._shortlist(self._fresh_starts(support), support, self._refining(steps), keep)

    def readapt(self, previous: State, support: Batch, steps: int) -> State:
        """Online, warm (``--online-warm``): the code of all data so far competes with the
        previous end, each refined ``steps`` context steps (none without trained refinement)."""
        return super().readapt(previous, support, self._refining(steps))

    def _refining(self, steps: int) -> int:
        """The context steps that refine the code: ``steps``, or none where none were trained."""
        return steps if self.default_steps else 0

    def _fresh_starts(self, support: Batch) -> torch.Tensor:
        """The code of the data, then any learned starts (``context_starts`` > 1: refining
        from each, the end that fits the support best is kept, as in context MAML; c₀ is
        unused: the encoder always reads the data)."""
        return self._with_starts(self.encoder.encode(self.params, support))

    def detached(self) -> "EncoderAdapter":
        return EncoderAdapter(self.name, self.net, self.model, self.encoder,
                              {k: v.detach() for k, v in self.params.items()}, td=self.td, support=self.support,
                              step_sizes=self.step_sizes.detach(), obs_weight=self.obs_weight,
                              model_weight=self.model_weight, first_order=self.first_order)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": "encoder", "pooling": self.encoder.pooling,
                "step_size_mean": float(self.step_sizes.detach().mean()) if self.default_steps else None}


__all__ = ["EncoderAdapter", "SetEncoder"]
