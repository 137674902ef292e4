"""Ways to adapt to a new task, all behind one interface (:class:`Adapter`)."""

from .base import Adapter, State, SupportSpec
from .gradient import GradientAdapter

__all__ = ["Adapter", "GradientAdapter", "State", "SupportSpec"]
