"""Per-task experience replay stored as tensors with a leading task axis.

Transitions arrive from a :class:`~metadqn.tasks.BatchedEnv` one ``[task, env]`` step at a
time and are stored in rings ``[task, slot, env, ...]``; all tasks write in lockstep, so
one write counter serves every task. n-step returns are computed when sampling, by
following each environment's own stream forward and stopping at an episode end or at the
newest data, so ``n_step`` can be changed freely (``n_step = horizon`` gives Monte-Carlo
returns) without re-collecting.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """A sampled batch, every tensor ``[task, batch, ...]``.

    The TD target for each row is ``returns + discount * V(next_obs)``: ``returns`` is the
    discounted n-step reward sum and ``discount`` is ``gamma**m`` (m steps actually
    summed), or 0 where the episode terminated inside the window.
    """

    obs: torch.Tensor
    action: torch.Tensor
    returns: torch.Tensor
    next_obs: torch.Tensor
    discount: torch.Tensor

    def task(self, i: int) -> "Batch":
        """The rows of one task (leading task axis removed)."""
        return Batch(self.obs[i], self.action[i], self.returns[i], self.next_obs[i], self.discount[i])

    def merge_tasks(self) -> "Batch":
        """All tasks' rows as one batch ``[1, task * batch, ...]`` (multi-task training)."""
        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(1, -1, *x.shape[2:])
        return Batch(flat(self.obs), flat(self.action), flat(self.returns), flat(self.next_obs), flat(self.discount))


class TaskReplay:
    """Ring buffers ``[task, slot, env, ...]`` holding ``capacity`` transitions per task."""

    def __init__(self, n_tasks: int, envs_per_task: int, capacity: int, obs_shape: tuple[int, ...],
                 device: str | torch.device = "cpu") -> None:
        if capacity < envs_per_task:
            raise ValueError(f"replay capacity ({capacity}) must hold at least one step of "
                             f"{envs_per_task} environments")
        self.n_tasks, self.envs_per_task = n_tasks, envs_per_task
        self.slots = capacity // envs_per_task
        self.device = torch.device(device)
        shape = (n_tasks, self.slots, envs_per_task)
        self.obs = torch.zeros((*shape, *obs_shape), device=self.device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.reward = torch.zeros(shape, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.done = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.steps = 0  # [task, env] steps written so far

    def __len__(self) -> int:
        """Transitions held per task."""
        return min(self.steps, self.slots) * self.envs_per_task

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, next_obs: torch.Tensor,
            terminated: torch.Tensor, done: torch.Tensor) -> None:
        """Store one step of every environment; each argument has leading axes ``[task, env]``."""
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

    def sample(self, batch_size: int, n_step: int = 1, gamma: float = 0.99, recent: int | None = None,
               generator: torch.Generator | None = None) -> Batch:
        """``batch_size`` transitions per task, uniformly from the last ``recent`` steps of each
        environment (all held data if None), with n-step returns."""
        held = min(self.steps, self.slots)
        if held == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        window = held if recent is None else max(1, min(held, int(recent)))
        shape = (self.n_tasks, batch_size)
        age = torch.randint(0, window, shape, generator=generator, device=self.device)  # 0 = newest
        env = torch.randint(0, self.envs_per_task, shape, generator=generator, device=self.device)
        # flat index into [task, slot, env] storage: 1-D indexing is the cheapest gather
        base = (torch.arange(self.n_tasks, device=self.device) * (self.slots * self.envs_per_task)).unsqueeze(1) + env
        start = self.steps - 1 - age
        reward, done = self.reward.view(-1), self.done.view(-1)
        returns = torch.zeros(shape, device=self.device)
        scale = torch.ones(shape, device=self.device)          # gamma**k while still summing
        alive = torch.ones(shape, dtype=torch.bool, device=self.device)
        first = base + (start % self.slots) * self.envs_per_task
        last = first                                             # index of the last summed step
        for k in range(n_step):
            idx = base + ((start + k) % self.slots) * self.envs_per_task
            use = alive & (age >= k)                             # step start+k exists and episode goes on
            returns = returns + torch.where(use, scale * reward[idx], 0.0)
            last = torch.where(use, idx, last)
            scale = torch.where(use, scale * gamma, scale)
            alive = use & ~done[idx]
        discount = scale * (~self.terminated.view(-1)[last]).float()
        obs_shape = self.obs.shape[3:]
        return Batch(self.obs.view(-1, *obs_shape)[first], self.action.view(-1)[first], returns,
                     self.next_obs.view(-1, *obs_shape)[last], discount)
