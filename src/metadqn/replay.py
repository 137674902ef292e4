"""Experience replay stored as tensors with a leading row axis.

A row is one task (DQN, multi-task DQN) or one adaptation instance (meta-training: task ×
env, each with its own adapted parameters). Transitions arrive from a
:class:`~metadqn.tasks.BatchedEnv` one step at a time and are stored in rings
``[row, slot, env, ...]``; all rows write in lockstep, so one write counter serves every row. n-step returns are computed when sampling, by
following each environment's own stream forward and stopping at an episode end or at the
newest data, so ``n_step`` can be changed freely (``n_step = horizon`` gives Monte-Carlo
returns) without re-collecting.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A sampled batch, every tensor ``[row, batch, ...]``.

    The TD target for each row is ``returns + discount * V(next_obs)``: ``returns`` is the
    discounted n-step reward sum and ``discount`` is ``gamma**m`` (m steps actually
    summed), or 0 where the episode terminated inside the window.
    """

    obs: torch.Tensor
    action: torch.Tensor
    returns: torch.Tensor
    next_obs: torch.Tensor
    discount: torch.Tensor

    def row(self, i: int) -> "Batch":
        """The transitions of row ``i`` (leading row axis removed)."""
        return Batch(self.obs[i], self.action[i], self.returns[i], self.next_obs[i], self.discount[i])


class Query(NamedTuple):
    """Meta-training's outer-loss data where its TD loss uses n > 1 steps: the same sampled
    transitions with the n-step returns (``td``) and one step long (``step``: a model head's
    targets are each transition's own reward and next observation, as in the support data it
    adapts on). With n = 1 the outer loss gets a plain :class:`Batch`, both at once."""

    td: Batch
    step: Batch


def query_parts(query: Batch | Query) -> tuple[Batch, Batch]:
    """(the TD loss's batch, the 1-step batch) of outer-loss data."""
    return (query.td, query.step) if isinstance(query, Query) else (query, query)


class TaskReplay:
    """Ring buffers ``[row, slot, env, ...]`` holding ``capacity`` transitions per row."""

    def __init__(self, n_rows: int, envs_per_row: int, capacity: int, obs_shape: tuple[int, ...],
                 device: str | torch.device = "cpu") -> None:
        if capacity < envs_per_row:
            raise ValueError(f"replay capacity ({capacity}) must hold at least one step of "
                             f"{envs_per_row} environments")
        self.n_rows, self.envs_per_row = n_rows, envs_per_row
        self.slots = capacity // envs_per_row
        self.device = torch.device(device)
        shape = (n_rows, self.slots, envs_per_row)
        self.obs = torch.zeros((*shape, *obs_shape), device=self.device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.reward = torch.zeros(shape, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.done = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.steps = 0  # steps written so far (each: one transition per row and env)

    def __len__(self) -> int:
        """Transitions held per row."""
        return min(self.steps, self.slots) * self.envs_per_row

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
            terminated: torch.Tensor, done: torch.Tensor) -> None:
        """Store one step of every environment; each argument has leading axes ``[row, env]``."""
        i = self.steps % self.slots
        self.obs[:, i] = obs
        self.action[:, i] = action
        self.reward[:, i] = reward
        self.next_obs[:, i] = next_obs
        self.terminated[:, i] = terminated
        self.done[:, i] = done
        self.steps += 1

    def clear(self) -> None:
        self.steps = 0

    STATE = ("obs", "next_obs", "action", "reward", "terminated", "done")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The stored data (for a checkpoint; ``steps`` goes with it separately)."""
        return {name: getattr(self, name) for name in self.STATE}

    def load_state(self, tensors: dict[str, torch.Tensor], steps: int) -> None:
        for name in self.STATE:
            if name not in tensors or tensors[name].shape != getattr(self, name).shape:
                raise ValueError(f"replay state {name!r} is missing or has the wrong shape")
            getattr(self, name).copy_(tensors[name])
        self.steps = int(steps)

    def sample(self, batch_size: int, n_step: int = 1, gamma: float = 0.99,
               generator: torch.Generator | None = None) -> Batch:
        """``batch_size`` transitions per row, uniformly (with replacement) from every held step
        of each environment, with n-step returns; ``batch_size=0``: every held transition of
        each row once, oldest first."""
        age, env = self._draw(batch_size, generator)
        return self._gather(age, env, n_step, gamma)

    def sample_query(self, batch_size: int, n_step: int, gamma: float = 0.99,
                     generator: torch.Generator | None = None) -> Batch | Query:
        """Outer-loss data: :meth:`sample` with ``n_step`` returns, and where ``n_step`` > 1 the
        same transitions one step long beside them (a :class:`Query`); the same random draws
        either way."""
        age, env = self._draw(batch_size, generator)
        td = self._gather(age, env, n_step, gamma)
        return td if n_step == 1 else Query(td, self._gather(age, env, 1, gamma))

    def _draw(self, batch_size: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(age, env) ``[row, batch]`` of the transitions :meth:`sample` takes (age 0 = newest)."""
        held = self._held()
        if batch_size == 0:
            age = torch.arange(held - 1, -1, -1, device=self.device).repeat_interleave(self.envs_per_row)
            env = torch.arange(self.envs_per_row, device=self.device).repeat(held)
            return age.expand(self.n_rows, -1), env.expand(self.n_rows, -1)
        shape = (self.n_rows, batch_size)
        age = torch.randint(0, held, shape, generator=generator, device=self.device)
        env = torch.randint(0, self.envs_per_row, shape, generator=generator, device=self.device)
        return age, env

    def _held(self) -> int:
        held = min(self.steps, self.slots)
        if held == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return held

    def _gather(self, age: torch.Tensor, env: torch.Tensor, n_step: int, gamma: float) -> Batch:
        """Transitions ``[row, batch]`` starting ``age`` steps before the newest, in ``env``."""
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        shape = age.shape
        # flat index into [row, slot, env] storage: 1-D indexing is the cheapest gather
        base = (torch.arange(self.n_rows, device=self.device) * (self.slots * self.envs_per_row)).unsqueeze(1) + env
        start = self.steps - 1 - age
        reward, done = self.reward.view(-1), self.done.view(-1)
        returns = torch.zeros(shape, device=self.device)
        scale = torch.ones(shape, device=self.device)          # gamma**k while still summing
        alive = torch.ones(shape, dtype=torch.bool, device=self.device)
        first = base + (start % self.slots) * self.envs_per_row
        last = first                                             # index of the last summed step
        for k in range(n_step):
            idx = base + ((start + k) % self.slots) * self.envs_per_row
            use = alive & (age >= k)                             # step start+k exists and episode goes on
            returns = returns + torch.where(use, scale * reward[idx], 0.0)
            last = torch.where(use, idx, last)
            scale = torch.where(use, scale * gamma, scale)
            alive = use & ~done[idx]
        discount = scale * (~self.terminated.view(-1)[last]).float()
        obs_shape = self.obs.shape[3:]
        return Batch(self.obs.view(-1, *obs_shape)[first], self.action.view(-1)[first], returns,
                     self.next_obs.view(-1, *obs_shape)[last], discount)
