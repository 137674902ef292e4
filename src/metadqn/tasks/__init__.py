"""Task families and their batched environments."""

from .bandit import BanditFamily
from .base import BatchedEnv, Param, StepResult, Task, TaskEnv, TaskError, TaskFamily, UserCodeError
from .cartpole import CartPoleFamily
from .driving import DrivingFamily
from .gridnav import GridNavFamily, GridNavPixelsFamily
from .gym_adapter import GymnasiumFamily, MissingExtra, from_gymnasium
from .history import HistoryFamily, TimeFamily, with_history, with_time, without_time
from .registry import list_families, make_family, register_family

__all__ = ["BanditFamily", "BatchedEnv", "CartPoleFamily", "DrivingFamily", "GridNavFamily", "GridNavPixelsFamily",
           "GymnasiumFamily", "HistoryFamily", "MissingExtra", "Param", "StepResult", "Task", "TaskEnv", "TaskError",
           "TaskFamily", "TimeFamily", "UserCodeError", "from_gymnasium", "list_families", "make_family", "register_family",
           "with_history", "with_time", "without_time"]
