"""The seam every adaptation method plugs into.

An :class:`Adapter` answers four questions, for ONE task instance at a time (the one
adaptation path in :mod:`metadqn.adaptation` batches instances with ``vmap``):

- what is my state before I see the task? (:meth:`Adapter.prior`)
- given support transitions, what is my state after k steps? (:meth:`Adapter.adapt`)
- what are my Q-values for an observation in that state? (:meth:`Adapter.q_values`)
- how do I collect and sample my support data? (:attr:`Adapter.support`)

A state is a dict of tensors (a whole parameter dict for MAML, a context vector for
context methods). Meta-training, ``learner.adapt``, ``metadqn adapt`` and ``metadqn
evaluate`` only talk to this interface, so a new method is one new class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..replay import Batch, Query

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SupportSpec:
    """How a method collects and samples a new task's data: exploration while collecting,
    transitions sampled per support episode for each adaptation step's loss (0: every
    transition once, no sampling), and the n-step returns and discount of the batch."""

    epsilon: float = 1.0
    batch: int = 64
    n_step: int = 1
    gamma: float = 0.99

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon <= 1:
            raise ValueError(f"support epsilon must be in [0, 1], got {self.epsilon}")
        if self.batch < 0 or self.n_step < 1:
            raise ValueError(f"support batch must be >= 0 and n_step >= 1, got {self.batch}, {self.n_step}")


class Adapter(ABC):
    """One way to adapt a Q-network to a new task (see the module docstring)."""

    name: str
    net: nn.Module
    support: SupportSpec
    uses_steps: bool = True   # False: adapt() infers the state from the data, whatever the step count (k = 0 too)
    online: bool = False      # True: cheap enough to re-adapt during an episode (metadqn evaluate --online)

    @property
    def resumable(self) -> bool:
        """Whether k₁ + k₂ steps equal k₂ steps from the state after k₁ (plain gradient steps);
        if not (a choice among starting points, an inference), every k starts from the prior."""
        return self.uses_steps

    @property
    def default_steps(self) -> int:
        """The adaptation steps the method was meta-trained with (online adaptation uses them)."""
        return 0

    @abstractmethod
    def prior(self) -> State:
        """The state before any task data (no instance axis)."""

    @abstractmethod
    def adapt(self, state: State, support: Batch, steps: int) -> State:
        """The state after ``steps`` adaptation steps on ``support`` (``[batch, ...]``, one
        instance). Differentiable with respect to the method's meta-parameters unless the
        adapter was :meth:`detached`."""

    def choice(self, state: State, support: Batch, steps: int, keep: int = 1) -> State:
        """The costly, non-differentiable decisions :meth:`adapt` would make from ``state`` on
        ``support`` (context MAML: which learned start to descend from), narrowed to the
        ``keep`` best options, as extra state entries; :meth:`adapt` from ``{**state, **choice}``
        decides among those only. Meta-training narrows once per iteration, with the
        iteration's θ on its support data, and every meta-update decides among what is left
        (``MetaConfig.start_shortlist``). None here: {}."""
        return {}

    @abstractmethod
    def q_values(self, state: State, obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``[..., n_actions]`` for observations ``[..., *obs_shape]`` in ``state``."""

    def readapt(self, previous: State, support: Batch, steps: int) -> State:
        """Online re-adaptation that may also use ``previous``, the last re-adaptation's end
        (``metadqn evaluate --online-warm``); by default it adapts from the prior."""
        return self.adapt(self.prior(), support, steps)

    def outer_loss(self, state: State, query: Batch | Query, *,
                   target: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Meta-training's loss for one instance's adapted ``state`` on its ``query`` data
        (``target``: the meta target network): a :class:`~metadqn.replay.Batch`, or with n-step
        TD a :class:`~metadqn.replay.Query` (:func:`~metadqn.replay.query_parts` splits either
        into the TD batch and the 1-step batch). Methods meta-trained by differentiating
        through :meth:`adapt` implement it."""
        raise NotImplementedError(f"{type(self).__name__} is not meta-trained through its adaptation")

    def task_loss(self, state: State, task: torch.Tensor) -> torch.Tensor:
        """Meta-training's optional task-inference loss: how well ``state`` predicts the
        instance's scaled task parameters ``task [P]`` (methods with a task context)."""
        raise NotImplementedError(f"{type(self).__name__} has no task context to predict the task from")

    def detached(self) -> "Adapter":
        """The same adapter with its meta-parameters cut from the autograd graph (for acting
        and evaluation)."""
        return self

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings (land in the evaluation JSON)."""
        return {"name": self.name, "support": vars(self.support).copy()}


__all__ = ["Adapter", "State", "SupportSpec"]
