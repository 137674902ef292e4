"""Context by Bayesian linear regression (``algo="blr"``): the task context is the exact
posterior mean of a linear model's weights on meta-learned features, solved in closed form.

Context MAML (adapters/context.py) descends a context a few gradient steps on a model loss;
from one random episode that finds *one* task consistent with the data (a basin of the loss),
and the Q-network then acts for that task alone. Here the model is linear in the task's
weights W, so the support data give W's posterior exactly (ALPaCA, Harrison et al. 2018;
R2-D2, Bertinetto et al. 2019 — a differentiable closed-form inner solve):

- features φ(s, a, s′) ∈ R^d (``reward_model="next"``: the reward of an observed transition)
  or φ(s, a) (``"joint"``, which with ``model_obs_weight`` > 0 also predicts the observation
  change) from a meta-learned MLP (parameters ``model.features.*``); prediction ŷ = Wᵀφ,
  W ∈ R^{d×m} (m = 1 for the reward, 1 + obs features with the observation change);
- prior W ~ N(W₀, diag(λ)⁻¹) per output column, W₀ the Q-network's ``context`` parameter
  (reshaped to [d, m]) and λ = exp(``model.log_precision``) meta-learned (floored at 10⁻³); unit noise;
- posterior mean W_N = (diag(λ) + ΦᵀΦ)⁻¹ (diag(λ) W₀ + ΦᵀY) on the support rows (one solve of
  a d × d system; differentiable, so the meta-gradient flows through it, second order);
- Q(s, a; c) with c = vec(W_N): the usual Q-network with a context input of d·m.

Where the data leave several tasks possible, W_N is the least-squares compromise between
them that the prior prefers — a summary of what is still possible, which Q-learning on
held-out-style support data learns to act on — rather than one of them. On a bandit with
one-hot features it is each arm's shrunk empirical mean (with λ = 2 and W₀ = ½ the Beta(1, 1)
posterior mean). The outer loss is the query TD loss of Q(·; c′) + ``model_weight`` × the
squared error of the posterior-mean predictions on the query transitions (which is what fits
the features and the prior: the prediction of new data after the support).

Adaptation "steps": 0 is the prior (c = vec W₀, zero-shot); any k ≥ 1 is the solve.

Measured (RESULTS.md, twenty-third and twenty-fourth sessions): with ``net.film`` at the bandit's
frozen limit (97–104% over five seeds; the bandit's default algorithm), and online from no data at
its online limit too when meta-trained on beginnings of the support (``support_prefix_min``; on
whole episodes only it never explores: 48%); below context
MAML on gridnav (0.83 vs 0.856), where a linear-Gaussian posterior cannot use that each reward
field is a distance to one goal; 0.15 / 0.23 / 0.20 on preference (three seeds; its default there), the only method
that adapts there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..meta.config import REWARD_MODELS
from ..nets import Params, init_params, q_values
from ..replay import Batch, Query, query_parts
from ..td import TDLoss, td_loss
from .base import Adapter, State, SupportSpec
from .context import PREFIX, ModelHead, action_one_hot, observation_rows, observation_width


MIN_LOG_PRECISION = math.log(1e-3)  # the prior precision λ stays ≥ 10⁻³ (measured runs learned 0.2–3)


class LinearModel(nn.Module):
    """ŷ(s, a[, s′]) = Wᵀ φ(s, a[, s′]) with meta-learned features φ (see the module docstring),
    evaluated on a parameter dict (keys ``model.*``)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, features: int, hidden: tuple[int, ...],
                 reward_model: str = "next", obs_weight: float = 0.0, *, newest: bool = False) -> None:
        super().__init__()
        if reward_model not in REWARD_MODELS:
            raise ValueError(f"reward_model must be one of {REWARD_MODELS}, got {reward_model!r}")
        if features < 1:
            raise ValueError(f"a linear model needs at least one feature, got {features}")
        self.newest = bool(newest)
        self.obs_dim = observation_width(obs_shape, self.newest)
        self.n_actions, self.n_features = int(n_actions), int(features)
        self.reads_next = reward_model == "next"
        # the observation change is predicted only from (s, a): a model reading s′ would copy it
        self.obs_weight = 0.0 if self.reads_next else float(obs_weight)
        self.outputs = 1 + (self.obs_dim if self.obs_weight > 0 else 0)
        width = self.obs_dim * (2 if self.reads_next else 1) + self.n_actions
        self.features = ModelHead._mlp(width, hidden, self.n_features)
        self.log_precision = nn.Parameter(torch.zeros(self.n_features))

    @property
    def context_width(self) -> int:
        """The Q-network's context: vec(W_N), d·m numbers."""
        return self.n_features * self.outputs

    def init_params(self, seed: int) -> Params:
        return {PREFIX + k: v for k, v in init_params(self, seed).items()}  # log_precision: zeros, λ = 1

    def phi(self, params: Params, batch: Batch) -> torch.Tensor:
        """Features ``[batch, d]`` of the transitions of ``batch``."""
        x = observation_rows(batch.obs, self.newest)
        parts = [x, action_one_hot(batch.action, self.n_actions, x.dtype)]
        if self.reads_next:
            parts.append(observation_rows(batch.next_obs, self.newest))
        z = torch.cat(parts, dim=1)
        n = len(self.features)
        for i in range(n):
            z = F.linear(z, params[f"{PREFIX}features.{i}.weight"], params[f"{PREFIX}features.{i}.bias"])
            if i < n - 1:
                z = F.relu(z)
        return z

    def targets(self, batch: Batch) -> torch.Tensor:
        """What the model predicts ``[batch, m]``: the reward, and with ``obs_weight`` > 0 the
        observation change scaled so that the squared error is context MAML's L_model
        (mean (r̂ − r)² + obs_weight · mean ‖Δŝ − Δs‖²)."""
        y = batch.returns.unsqueeze(-1)
        if self.outputs == 1:
            return y
        delta = observation_rows(batch.next_obs, self.newest) - observation_rows(batch.obs, self.newest)
        return torch.cat((y, delta * math.sqrt(self.obs_weight / self.obs_dim)), dim=1)

    def posterior_mean(self, params: Params, prior_mean: torch.Tensor, batch: Batch) -> torch.Tensor:
        """W_N ``[d, m]`` after the transitions of ``batch`` from the prior mean ``[d, m]``."""
        phi = self.phi(params, batch)
        # floored: a prior precision near 0 would leave the directions the data do not reach singular
        precision = params[PREFIX + "log_precision"].clamp(min=MIN_LOG_PRECISION).exp()
        a = torch.diag(precision) + phi.T @ phi
        return torch.linalg.solve(a, precision.unsqueeze(-1) * prior_mean + phi.T @ self.targets(batch))

    def loss(self, params: Params, weights: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Squared error of the predictions with weights ``[d, m]`` on ``batch`` (mean over rows)."""
        err = self.phi(params, batch) @ weights - self.targets(batch)
        return err.square().sum(-1).mean()


class BLRContextAdapter(Adapter):
    """The adapter of ``algo="blr"`` (see the module docstring). ``params`` holds the
    Q-network's parameters (``context`` = vec W₀) and the linear model's (``model.*``)."""

    online = True

    def __init__(self, name: str, net: nn.Module, model: LinearModel, params: Params, *, td: TDLoss,
                 support: SupportSpec, model_weight: float = 1.0) -> None:
        self.name, self.net, self.model, self.params = name, net, model, params
        self.td, self.support, self.model_weight = td, support, model_weight

    @property
    def default_steps(self) -> int:
        return 1

    @property
    def resumable(self) -> bool:
        return False  # the solve is from the prior: a second "step" would count the data twice

    def prior(self) -> State:
        return {"context": self.params["context"]}

    def _weights(self, context: torch.Tensor) -> torch.Tensor:
        return context.reshape(self.model.n_features, self.model.outputs)

    def adapt(self, state: State, support: Batch, steps: int) -> State:
        if steps == 0:
            return {"context": state["context"]}
        w = self.model.posterior_mean(self.params, self._weights(state["context"]), support)
        return {"context": w.reshape(-1)}

    def q_values(self, state: State, obs: torch.Tensor) -> torch.Tensor:
        return q_values(self.net, {**self.params, "context": state["context"]}, obs)

    def outer_loss(self, state: State, query: Batch | Query, *, target: Params | None) -> torch.Tensor:
        """The query TD loss of Q(·; c′) + ``model_weight`` × the posterior-mean predictions'
        squared error on the same transitions one step long."""
        c = state["context"]
        td_batch, step_batch = query_parts(query)
        tgt = None if target is None else {**target, "context": c.detach()}
        td = td_loss(self.net, {**self.params, "context": c}, td_batch, target=tgt, double=self.td.double,
                     loss=self.td.loss)
        return td + self.model_weight * self.model.loss(self.params, self._weights(c), step_batch)

    def detached(self) -> "BLRContextAdapter":
        return BLRContextAdapter(self.name, self.net, self.model, {k: v.detach() for k, v in self.params.items()},
                                 td=self.td, support=self.support, model_weight=self.model_weight)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": "blr-context", "context_dim": int(self.params["context"].shape[0]),
                "features": self.model.n_features, "outputs": self.model.outputs, "reads_next": self.model.reads_next,
                "obs_weight": self.model.obs_weight, "model_weight": self.model_weight, "td": vars(self.td).copy(),
                "prior_precision_mean": float(self.params[PREFIX + "log_precision"].detach().exp().mean())}


__all__ = ["BLRContextAdapter", "LinearModel"]
