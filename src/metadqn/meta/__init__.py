"""Meta-learning pieces: the inner loop (MAML second/first order, Meta-SGD), Reptile's
direction, task weighting, and one meta-iteration (:mod:`metadqn.meta.iteration`)."""

from .maml import InnerLoop, adapt, adapt_tasks, gradient_steps, maml_loss
from .reptile import reptile_direction
from .weighting import task_weights

__all__ = ["InnerLoop", "adapt", "adapt_tasks", "gradient_steps", "maml_loss", "reptile_direction", "task_weights"]
