"""Task families, the public face: build one by name, list them, register your own, or turn
any Gymnasium environment into one.

>>> import metadqn.families as families
>>> families.list_families()                                   # doctest: +SKIP
>>> family = families.make_family("driving")
>>> mine = families.from_gymnasium("CartPole-v1", params={"gravity": (5.0, 15.0)})
"""

from .tasks import (BatchedEnv, GymnasiumFamily, HistoryFamily, MissingExtra, Param, StepResult, Task, TaskEnv,
                    TaskError, TaskFamily, TimeFamily, UserCodeError, from_gymnasium, list_families, make_family,
                    register_family, with_history, with_time, without_time)
from .tasks.gym_adapter import acrobot_physics, highway, lunarlander_physics

__all__ = ["BatchedEnv", "GymnasiumFamily", "HistoryFamily", "MissingExtra", "Param", "StepResult", "Task", "TaskEnv",
           "TaskError", "TaskFamily", "TimeFamily", "UserCodeError", "acrobot_physics", "from_gymnasium", "highway",
           "list_families", "lunarlander_physics", "make_family", "register_family", "with_history", "with_time", "without_time"]
