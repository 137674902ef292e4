"""The information limit: the best any method could do with the same new-task data.

Where a family computes it exactly (:meth:`~metadqn.tasks.TaskFamily.frozen_limit_return`
and ``online_limit_return``: gridnav's posterior over goals, the bandit's Beta posterior and
its Bayes-adaptive dynamic program in :mod:`metadqn.tasks.bandit_limits`),
the limit of a frozen policy — or of one that keeps updating its belief during the
evaluation episode — is computed per held-out task and run from the very support data that methods exploring
uniformly at random collect (the same seeds as :func:`metadqn.adaptation.adapt_instances`),
then normalized like every method's return. A method's NR reads against this number, not
against 1: 0.63 is poor only if the limit is far above it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .adaptation import new_task_data
from .tasks import Task, TaskFamily


KINDS = ("frozen", "online", "memoryless")


def support_data(family: TaskFamily, tasks: Sequence[Task], *, runs_per_task: int, episodes: int, seed: int = 0,
                 device: str | torch.device = "cpu") -> tuple[list[Task], list[dict[str, np.ndarray]]]:
    """The random support data of every instance (task-major, ``runs_per_task`` per task) that
    methods exploring uniformly at random see with ``seed``: one mapping of ``obs``, ``action``,
    ``reward``, ``next_obs``, ``terminated`` (each ``[step, ...]``) per instance."""
    buf, _ = new_task_data(family, tasks, runs_per_task=runs_per_task, episodes=episodes, adapter=None, seed=seed,
                           device=device, extra_capacity=1)
    held = min(buf.steps, buf.slots)
    arrays = {name: getattr(buf, name)[:, :held, 0].cpu().numpy()
              for name in ("obs", "action", "reward", "next_obs", "terminated")}          # [row, step, ...]
    instances = [task for task in tasks for _ in range(runs_per_task)]                     # task-major rows
    return instances, [{k: v[row] for k, v in arrays.items()} for row in range(len(instances))]


def limit_returns(family: TaskFamily, tasks: Sequence[Task], *, kind: str, runs_per_task: int, episodes: int,
                  seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray | None:
    """Return ``[task, run]`` of the Bayes-optimal policy given each instance's random support
    data (``episodes`` may be 0 for ``kind="online"``): ``"frozen"`` after the support, or
    ``"online"``, updating its belief during the evaluation episode too; ``"memoryless"``, the
    best frozen policy that reads only the current observation (a reference for memoryless
    Q-networks, not a limit of the information). None where the family cannot compute it for
    every instance."""
    if kind not in KINDS:
        raise ValueError(f"limit kind must be one of {KINDS}, got {kind!r}")
    instances, data = support_data(family, tasks, runs_per_task=runs_per_task, episodes=episodes, seed=seed,
                                   device=device)
    if kind in ("frozen", "memoryless"):
        exact = family.frozen_limit_return if kind == "frozen" else family.memoryless_limit_return
        values = [exact(t, d) for t, d in zip(instances, data)]
    else:  # batched: the bandit's exact Bayes-adaptive DP is far cheaper for many instances at once
        values = family.online_limit_returns(instances, data)
    if any(v is None for v in values):
        return None
    return np.asarray(values, dtype=np.float64).reshape(len(tasks), runs_per_task)


__all__ = ["KINDS", "limit_returns", "support_data"]
