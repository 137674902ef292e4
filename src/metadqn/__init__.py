"""metadqn: meta-reinforcement learning with value-based agents (MAML applied to DQN)."""

from .tasks import Task, TaskError, TaskFamily, list_families, make_family, register_family
from .adapters import Adapter, GradientAdapter, SupportSpec
from .dqn_agent import DQN, DQNConfig
from .learner import MAMLDQN, MetaConfig
from .evaluate import EvalConfig, evaluate  # noqa: E402  (the function shadows the module name)
from . import families  # noqa: E402  (metadqn.families.from_gymnasium etc.)

__version__ = "0.1.0"
__all__ = ["Adapter", "DQN", "DQNConfig", "EvalConfig", "GradientAdapter", "MAMLDQN", "MetaConfig", "SupportSpec",
           "Task", "TaskError", "TaskFamily", "evaluate", "families", "list_families", "make_family",
           "register_family"]
