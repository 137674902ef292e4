"""metadqn: meta-reinforcement learning with value-based agents (MAML applied to DQN)."""

from .tasks import Task, TaskError, TaskFamily, list_families, make_family, register_family

__version__ = "0.1.0"
__all__ = ["Task", "TaskError", "TaskFamily", "list_families", "make_family", "register_family"]
