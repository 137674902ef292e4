"""Meta-learning: MAML (second/first order), Meta-SGD, Reptile, task weighting."""

from .maml import adapt, adapt_tasks, maml_loss
from .reptile import reptile_direction
from .weighting import task_weights

__all__ = ["adapt", "adapt_tasks", "maml_loss", "reptile_direction", "task_weights"]
