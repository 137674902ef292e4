"""Ways to adapt to a new task, all behind one interface (:class:`Adapter`)."""

from .base import Adapter, State, SupportSpec
from .context import ContextModelAdapter, ModelHead
from .encoder import EncoderAdapter, SetEncoder
from .gradient import GradientAdapter

__all__ = ["Adapter", "ContextModelAdapter", "EncoderAdapter", "GradientAdapter", "ModelHead", "SetEncoder", "State", "SupportSpec"]
