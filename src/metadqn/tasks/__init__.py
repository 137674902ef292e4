"""Task families and their batched environments."""

from .bandit import BanditFamily
from .base import BatchedEnv, Param, StepResult, Task, TaskEnv, TaskError, TaskFamily
from .cartpole import CartPoleFamily
from .gridnav import GridNavFamily
from .registry import list_families, make_family, register_family

__all__ = ["BanditFamily", "BatchedEnv", "CartPoleFamily", "GridNavFamily", "Param", "StepResult",
           "Task", "TaskEnv", "TaskError", "TaskFamily", "list_families", "make_family",
           "register_family"]
