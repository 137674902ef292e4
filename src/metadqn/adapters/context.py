"""Context MAML on a model loss: adapt a small task context c by gradient steps on how well
a learned model predicts the support data, and act with Q(s, a; c).

CAVIA adapts only a context vector; MIER adapts a model rather than a value function
because models adapt more easily and more stably; Meta-SGD learns the step sizes. Here:

- Q(s, a; c) is the usual Q-network with a context input (``NetSpec.context = d``); c₀ (the
  network's ``context`` parameter) is meta-learned;
- m(s, a; c) → (r̂, Δŝ) is a small model head (parameters ``model.*``);
- inner loop: c_{k+1} = c_k − α_k ⊙ ∇_c L_model(c_k; support), with learned per-step,
  per-dimension step sizes α ∈ R^{K×d} (steps past K, at test time, reuse α_K with
  backtracking: a step is kept only where it lowers the support loss);
  L_model = mean (r̂ − r)² + ``obs_weight`` · mean ‖Δŝ − (s′ − s)‖²;
- outer loss: TD of Q(·; c′) on query data (target network with the same c′, no gradient)
  + ``model_weight`` · L_model(c′; query), differentiated through the inner steps;
- multi-start (``context_starts`` M > 1): the inner loop also runs from M − 1 more learned
  starting contexts and keeps the end point with the lowest support model loss (a MAP-like
  choice among basins: gradient steps from one prior find one basin of a multimodal loss);
- pooled ends (``context_pool`` P > 1, with multi-start): the Q-network reads c̄ + A s instead of
  the best end, c̄ and s the mean and per-dimension spread of the P best-fitting ends weighted by
  softmax(−loss / τ) (A and τ meta-learned, A from the identity; the weights carry no gradient
  through the losses); the model loss and online re-adaptation use the best end (state ``end``).
  Where the support leaves several tasks possible, the ends land in several basins, and the
  Q-network sees that, rather than one hypothesis.

Only d numbers move per task, so adaptation costs microseconds and cannot wreck the network;
the data, not the step count, is what is scarce.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from ..meta.config import REWARD_MODELS
from ..nets import Params, init_params, q_values
from ..replay import Batch, Query, query_parts
from ..td import TDLoss, td_loss
from .base import Adapter, State, SupportSpec

PREFIX = "model."


def observation_width(obs_shape: tuple[int, ...], newest: bool) -> int:
    """Features per observation that a model head or an encoder reads: the flattened
    observation, or with ``newest`` the newest step of a window ``[steps, features + 1]``
    (``with_history``: oldest step first, each with a trailing "real step" flag, left out)."""
    if not newest:
        return int(torch.Size(obs_shape).numel())
    if len(obs_shape) != 2 or obs_shape[1] < 2:
        raise ValueError(f"context_obs='newest' reads the newest step of window observations [steps, features] "
                         f"(a with_history family); these observations have shape {list(obs_shape)}")
    return int(obs_shape[1]) - 1


def observation_rows(obs: torch.Tensor, newest: bool) -> torch.Tensor:
    """``obs [batch, *obs_shape]`` as the rows ``[batch, width]`` of :func:`observation_width`."""
    return obs[:, -1, :-1] if newest else obs.reshape(obs.shape[0], -1)


def action_one_hot(action: torch.Tensor, n_actions: int, dtype: torch.dtype) -> torch.Tensor:
    """``action [batch]`` as one-hot rows ``[batch, n_actions]`` (vmap-safe: a comparison, no
    data-dependent indexing)."""
    return (action.unsqueeze(-1) == torch.arange(n_actions, device=action.device)).to(dtype)


class ModelHead(nn.Module):
    """m(s, a; c) → (r̂, Δŝ), evaluated on a parameter dict (keys ``model.*``).

    ``reward_model="joint"``: one MLP on [flattened observation, one-hot action, context]
    predicts both (keys ``model.layers.{i}``). ``"next"``: the reward has its own MLP that
    also sees the observed next observation, r̂(s, a, s′; c) (keys ``model.reward.{i}``) — the
    reward of a transition, given the transition, as most reward models are — and the
    dynamics MLP predicts Δŝ from (s, a; c) alone."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, context: int, hidden: tuple[int, ...],
                 reward_model: str = "joint", members: int = 1, *, newest: bool = False) -> None:
        super().__init__()
        if reward_model not in REWARD_MODELS:
            raise ValueError(f"reward_model must be one of {REWARD_MODELS}, got {reward_model!r}")
        if members < 1:
            raise ValueError(f"a model head needs at least one member, got {members}")
        self.newest = bool(newest)
        self.obs_dim = observation_width(obs_shape, self.newest)
        self.n_actions, self.context, self.reward_model = int(n_actions), int(context), reward_model
        self.members = int(members)
        joint = reward_model == "joint"
        for e in range(self.members):  # member 0 keeps the single head's names (older checkpoints load)
            setattr(self, self._name("layers", e),
                    self._mlp(self.obs_dim + self.n_actions + self.context, hidden, int(joint) + self.obs_dim))
            if not joint:
                setattr(self, self._name("reward", e), self._mlp(2 * self.obs_dim + self.n_actions + self.context, hidden, 1))

    @staticmethod
    def _name(net: str, member: int) -> str:
        return net if member == 0 else f"{net}_{member}"

    @staticmethod
    def _mlp(width: int, hidden: tuple[int, ...], out: int) -> nn.ModuleList:
        layers = nn.ModuleList()
        for h in (*hidden, out):
            layers.append(nn.Linear(width, h))
            width = h
        return layers

    def init_params(self, seed: int) -> Params:
        return {PREFIX + k: v for k, v in init_params(self, seed).items()}

    def predict(self, params: Params, obs: torch.Tensor, action: torch.Tensor, context: torch.Tensor,
                next_obs: torch.Tensor | None = None, member: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted reward ``[batch]`` and observation change ``[batch, obs_dim]`` for
        ``obs [batch, *obs_shape]``, ``action [batch]`` and one context ``[d]`` (and, for
        ``reward_model="next"``, the observed ``next_obs``): of one ``member``, or the
        members' mean."""
        if member is None and self.members > 1:
            preds = [self.predict(params, obs, action, context, next_obs, e) for e in range(self.members)]
            return (torch.stack([r for r, _ in preds]).mean(0), torch.stack([d for _, d in preds]).mean(0))
        if self.reward_model == "next" and next_obs is None:
            raise ValueError("reward_model='next' predicts the reward of an observed transition: pass next_obs")
        reward, delta, _ = self._member(params, member or 0, self._inputs(obs, action, next_obs), context)
        return reward, delta

    def loss(self, params: Params, context: torch.Tensor, batch: Batch, obs_weight: float) -> torch.Tensor:
        """L_model of one instance's 1-step transitions (``batch.returns`` is the reward): each
        member's error, averaged over the members (each is fit on its own, so a context has to
        suit all of them — it cannot exploit one model's errors)."""
        return self._fit(params, context, batch, obs_weight, context_grad=False)[0]

    def loss_and_context_grad(self, params: Params, context: torch.Tensor, batch: Batch,
                              obs_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss` and its gradient with respect to ``context`` ``[d]`` (the inner loop's
        gradient), by explicit back-propagation along the context's path through the head's
        ReLU MLPs: the numbers of ``torch.func.grad`` of :meth:`loss` (a test checks it, and the
        second-order meta-gradient through it), at a fraction of the cost — plain tensor algebra
        that autograd differentiates once for the meta-gradient, instead of a nested ``grad``
        transform; context MAML spends most of its time here."""
        value, g = self._fit(params, context, batch, obs_weight, context_grad=True)
        assert g is not None
        return value, g

    def _inputs(self, obs: torch.Tensor, action: torch.Tensor,
                next_obs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The rows ``[batch, width]``, [rows, one-hot action] and the next rows (or None)."""
        x = observation_rows(obs, self.newest)
        one_hot = action_one_hot(action, self.n_actions, x.dtype)
        nxt = None if next_obs is None else observation_rows(next_obs, self.newest)
        return x, torch.cat((x, one_hot), dim=1), nxt

    def _member(self, params: Params, e: int, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
                context: torch.Tensor, *, dynamics: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """Member ``e``'s r̂ ``[batch]``, Δŝ ``[batch, obs_dim]`` (None where ``dynamics`` is off
        and the reward has its own MLP: the dynamics MLP is not run), and a function mapping
        (∂L/∂r̂, ∂L/∂Δŝ) to ∂L/∂context."""
        _, xa, nxt = inputs
        joint = self.reward_model == "joint"
        if joint or dynamics:
            name = self._name("layers", e)
            out, back = self._mlp_on(params, name, len(getattr(self, name)), xa, context)
        if joint:
            return out[:, 0], out[:, 1:], lambda dr, dd: back(torch.cat((dr.unsqueeze(1), dd), dim=1))
        assert nxt is not None
        name = self._name("reward", e)
        r_out, r_back = self._mlp_on(params, name, len(getattr(self, name)), torch.cat((xa, nxt), dim=1), context)
        if not dynamics:
            return r_out[:, 0], None, lambda dr, dd: r_back(dr.unsqueeze(1))
        return r_out[:, 0], out, lambda dr, dd: back(dd) + r_back(dr.unsqueeze(1))

    def _fit(self, params: Params, context: torch.Tensor, batch: Batch, obs_weight: float, *,
             context_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """L_model (see :meth:`loss`), and with ``context_grad`` its gradient in ``context``. With
        ``obs_weight`` 0 a separate reward MLP's loss is the whole loss, and the dynamics MLP,
        which cannot change it, is not run."""
        inputs = self._inputs(batch.obs, batch.action, batch.next_obs)
        true_delta = inputs[2] - inputs[0]
        dynamics = obs_weight != 0
        total, g = 0.0, None
        for e in range(self.members):
            reward, delta, back = self._member(params, e, inputs, context, dynamics=dynamics)
            # written out: F.mse_loss mis-broadcasts under vmap when only the prediction is batched
            r_err = reward - batch.returns
            total = total + r_err.square().mean()
            d_grad = None
            if delta is not None:
                d_err = delta - true_delta
                total = total + obs_weight * d_err.square().mean()
                d_grad = (2.0 * obs_weight / d_err.numel()) * d_err
            if context_grad:  # ∂L/∂r̂ and ∂L/∂Δŝ of the two means, back along the context's path
                ge = back((2.0 / r_err.numel()) * r_err, d_grad)
                g = ge if g is None else g + ge
        return total / self.members, None if g is None else g / self.members

    @staticmethod
    def _mlp_on(params: Params, name: str, n: int, fixed: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The ReLU MLP ``name`` on ``[fixed, context]`` (``fixed`` ``[batch, k]``; one context
        ``[d]`` shared by the rows, so the first layer's ``fixed`` part is computed once for
        every context — under ``vmap`` over candidate contexts it carries no candidate axis),
        and a function mapping ∂L/∂output ``[batch, out]`` to ∂L/∂context ``[d]``."""
        w0 = params[f"{PREFIX}{name}.0.weight"]
        k = fixed.shape[1]
        z = F.linear(fixed, w0[:, :k], params[f"{PREFIX}{name}.0.bias"]) + F.linear(context, w0[:, k:])
        pre = []
        for i in range(1, n):
            pre.append(z)
            z = F.linear(F.relu(z), params[f"{PREFIX}{name}.{i}.weight"], params[f"{PREFIX}{name}.{i}.bias"])

        def back(g: torch.Tensor) -> torch.Tensor:
            for i in range(n - 1, 0, -1):  # ReLU's backward, fused (autograd differentiates it, vmap batches it)
                g = torch.ops.aten.threshold_backward(g @ params[f"{PREFIX}{name}.{i}.weight"], pre[i - 1], 0.0)
            return g.sum(0) @ w0[:, k:]
        return z, back


class ContextModelAdapter(Adapter):
    """The adapter of context MAML (see the module docstring). ``params`` holds the
    Q-network's parameters (``context`` = c₀) and the model head's (``model.*``);
    ``step_sizes`` is α ``[K, d]``."""

    online = True

    def __init__(self, name: str, net: nn.Module, model: ModelHead, params: Params, *, step_sizes: torch.Tensor,
                 td: TDLoss, support: SupportSpec, obs_weight: float = 1.0, model_weight: float = 1.0,
                 first_order: bool = False, pool: int = 1) -> None:
        self.name, self.net, self.model, self.params = name, net, model, params
        self.step_sizes, self.td, self.support = step_sizes, td, support
        self.obs_weight, self.model_weight, self.first_order = obs_weight, model_weight, first_order
        self.pool = pool

    @property
    def default_steps(self) -> int:
        return int(self.step_sizes.shape[0])

    @property
    def resumable(self) -> bool:
        # never: step i uses α_i and steps past K backtrack, so k steps are not the steps of an
        # earlier call and k − j more (and multi-start chooses anew on each call)
        return False

    def prior(self) -> State:
        c = self.params["context"]
        return {"context": c} if self.pool == 1 else {"context": c, "end": c}

    def adapt(self, state: State, support: Batch, steps: int) -> State:
        if self.pool > 1:
            candidates = self._with_starts(state.get("end", state["context"]))
            if "shortlist" in state:
                candidates = state["shortlist"] @ candidates
            if steps == 0:
                return {"context": candidates[0], "end": candidates[0]}
            return self._pooled(*self._ends_and_losses(candidates, support, steps))
        return {"context": self._best_descent(self._with_starts(state["context"]), support, steps,
                                              state.get("shortlist"))}

    def _pooled(self, ends: torch.Tensor, losses: torch.Tensor) -> State:
        """``context_pool`` P > 1: the Q-network reads c̄ + A s, where c̄ and s are the mean and the
        spread of the P ends ``[M, d]`` with the lowest support ``losses`` ``[M]``, weighted by
        softmax(−loss / τ) (τ and A meta-learned; A starts at the identity), so that it sees
        how many hypotheses the support leaves open, not one of them; the model reads the best end."""
        p = min(self.pool, ends.shape[0])
        best = losses.detach().argsort()[:p]  # vmap-safe: a fixed number of indices
        pick = (best.unsqueeze(-1) == torch.arange(ends.shape[0], device=best.device)).to(ends.dtype)
        top, top_losses = pick @ ends, pick @ losses
        # the weights read the fit, not what helps the outer loss: with gradients through the losses,
        # TD could move the model head to reweight hypotheses (1/tau-sized), and one seed in ten collapsed
        w = torch.softmax(-top_losses.detach() / self.params["pool.log_tau"].exp(), 0)
        mean = w @ top
        spread = (w @ (top - mean).square() + 1e-8).sqrt()
        return {"context": mean + spread @ self.params["pool.spread"].T, "end": top[0]}

    def choice(self, state: State, support: Batch, steps: int, keep: int = 1) -> State:
        """``{"shortlist": [keep, M]}``: one-hot rows naming the ``keep`` starts whose ends fit
        ``support`` best, best first (:meth:`adapt` then chooses among those only); {} where
        there is nothing to narrow (no steps, one start, or ``keep`` ≥ M)."""
        return self._shortlist(self._with_starts(state["context"]), support, steps, keep)

    def _shortlist(self, candidates: torch.Tensor, support: Batch, steps: int, keep: int) -> State:
        m = candidates.shape[0]
        if steps == 0 or keep >= m:
            return {}
        with torch.no_grad():
            _, losses = self._ends_and_losses(candidates.detach(), support, steps)
        best = losses.argsort()[:keep]  # vmap-safe: a fixed number of indices
        return {"shortlist": (best.unsqueeze(-1) == torch.arange(m, device=best.device)).to(candidates.dtype)}

    def _with_starts(self, first: torch.Tensor) -> torch.Tensor:
        """Candidates ``[M, d]``: ``first`` ``[d]``, then the learned starts (if any)."""
        starts = self.params.get("context_starts")
        return first.unsqueeze(0) if starts is None else torch.cat((first.unsqueeze(0), starts))

    def _best_descent(self, candidates: torch.Tensor, support: Batch, steps: int,
                      shortlist: torch.Tensor | None = None) -> torch.Tensor:
        """The end of ``steps`` steps from the candidate ``[M, d]`` whose end fits the support
        best (among those ``shortlist`` ``[S, M]`` names, where a :meth:`choice` narrowed them
        earlier). Only the kept end carries a gradient (the choice is piecewise constant), so the
        descents that choose run without the meta-gradient's graph, and the kept one runs again
        with it."""
        if shortlist is not None:
            candidates = shortlist @ candidates  # exact rows, differentiable in the candidates
        if steps == 0 or candidates.shape[0] == 1:
            return self._descend(candidates[0], support, steps)
        with torch.no_grad():
            _, pick = self._choose(candidates.detach(), support, steps)
        return self._descend((pick.unsqueeze(-1) * candidates).sum(0), support, steps)

    def readapt(self, previous: State, support: Batch, steps: int) -> State:
        """Online: the previous end competes with every fresh start (:meth:`_fresh_starts`),
        each descended ``steps`` steps; the end with the lowest support loss is kept. Never
        resumes blindly from the previous end, so it cannot drift further from a fresh start
        than ``steps`` steps from some candidate."""
        candidates = torch.cat((previous.get("end", previous["context"]).unsqueeze(0), self._fresh_starts(support)))
        if self.pool > 1:
            return self._pooled(*self._ends_and_losses(candidates, support, steps))
        ends, pick = self._choose(candidates, support, steps)
        return {"context": (pick.unsqueeze(-1) * ends).sum(0)}

    def _fresh_starts(self, support: Batch) -> torch.Tensor:
        """Where a cold adaptation may start ``[M, d]``: c₀ and the learned starts."""
        return self._with_starts(self.params["context"])

    def _choose(self, candidates: torch.Tensor, support: Batch, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ends ``[M, d]`` of ``steps`` steps from each candidate ``[M, d]``, and a one-hot
        ``[M]`` of the end with the lowest support model loss (vmap-safe: no data-dependent
        indexing)."""
        ends, losses = self._ends_and_losses(candidates, support, steps)
        return ends, (torch.arange(ends.shape[0], device=ends.device) == losses.argmin()).to(ends.dtype)

    def _ends_and_losses(self, candidates: torch.Tensor, support: Batch,
                         steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ends ``[M, d]`` of ``steps`` steps from each candidate and their support model
        losses ``[M]``."""
        ends = vmap(lambda c: self._descend(c, support, steps))(candidates)
        return ends, vmap(lambda c: self.model.loss(self.params, c, support, self.obs_weight))(ends)

    def _descend(self, c: torch.Tensor, support: Batch, steps: int) -> torch.Tensor:
        """``steps`` steps of the inner loop from ``c``: step i < K uses α_i; steps past K
        are :meth:`_settle`'s. The gradient is the model head's explicit one
        (:meth:`ModelHead.loss_and_context_grad`); second order unless ``first_order``."""
        trained = int(self.step_sizes.shape[0])
        for i in range(min(steps, trained)):
            _, g = self.model.loss_and_context_grad(self.params, c, support, self.obs_weight)
            c = c - self.step_sizes[i] * (g.detach() if self.first_order else g)
        return self._settle(c, support, steps - trained) if steps > trained else c

    def _settle(self, c: torch.Tensor, support: Batch, steps: int) -> torch.Tensor:
        """Steps past the trained K (test time only: training takes K), with backtracking: a
        step of α_K is kept only where it lowers the support loss, and where it does not the
        instance's step size halves. The learned α are tuned for exactly K steps; repeating α_K
        blindly oscillated (gridnav encoder, 1,200 iterations: support loss 0.0005 at k = 5,
        0.027 at k = 10, NR 0.85 → 0.78), so more steps can no longer undo a good fit."""
        def loss_grad(context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            value, g = self.model.loss_and_context_grad(self.params, context, support, self.obs_weight)
            return value, (g.detach() if self.first_order else g)
        alpha = self.step_sizes[-1]
        scale = torch.ones((), dtype=c.dtype, device=c.device)
        current, g = loss_grad(c)
        for _ in range(steps):
            trial = c - scale * alpha * g
            trial_loss, trial_g = loss_grad(trial)
            fell = trial_loss < current
            c, current = torch.where(fell, trial, c), torch.where(fell, trial_loss, current)
            g = torch.where(fell, trial_g, g)
            scale = torch.where(fell, scale, scale / 2)
        return c

    def q_values(self, state: State, obs: torch.Tensor) -> torch.Tensor:
        return q_values(self.net, {**self.params, "context": state["context"]}, obs)

    def outer_loss(self, state: State, query: Batch | Query, *, target: Params | None) -> torch.Tensor:
        """The query TD loss of Q(·; c′) (n-step where the config says so) + ``model_weight`` ×
        the model loss of c′ on the same transitions one step long (the model's targets are each
        transition's own reward and next observation, as in the support data it adapts on)."""
        c = state["context"]
        td_batch, step_batch = query_parts(query)
        tgt = None if target is None else {**target, "context": c.detach()}
        td = td_loss(self.net, {**self.params, "context": c}, td_batch, target=tgt, double=self.td.double,
                     loss=self.td.loss)
        return td + self.model_weight * self.model.loss(self.params, state.get("end", c), step_batch, self.obs_weight)

    def task_loss(self, state: State, task: torch.Tensor) -> torch.Tensor:
        """Squared error of the linear probe ``probe.*`` reading the task parameters off c′."""
        pred = F.linear(state.get("end", state["context"]), self.params["probe.weight"], self.params["probe.bias"])
        return (pred - task).square().mean()

    def detached(self) -> "ContextModelAdapter":
        return ContextModelAdapter(self.name, self.net, self.model, {k: v.detach() for k, v in self.params.items()},
                                   step_sizes=self.step_sizes.detach(), td=self.td, support=self.support,
                                   obs_weight=self.obs_weight, model_weight=self.model_weight,
                                   first_order=self.first_order, pool=self.pool)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": "context-model", "context_dim": int(self.params["context"].shape[0]),
                "trained_steps": int(self.step_sizes.shape[0]), "obs_weight": self.obs_weight,
                "starts": 1 + (int(self.params["context_starts"].shape[0]) if "context_starts" in self.params else 0),
                "model_weight": self.model_weight, "first_order": self.first_order, "pool": self.pool,
                "td": vars(self.td).copy(),
                "step_size_mean": float(self.step_sizes.detach().mean())}


__all__ = ["ContextModelAdapter", "ModelHead", "action_one_hot", "observation_rows", "observation_width"]
