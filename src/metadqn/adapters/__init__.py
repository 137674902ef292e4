"""Ways to adapt to a new task, all behind one interface (:class:`Adapter`)."""

from .base import Adapter, State, SupportSpec
from .blr import BLRContextAdapter, LinearModel
from .context import ContextModelAdapter, ModelHead
from .encoder import EncoderAdapter, SetEncoder
from .gradient import GradientAdapter

__all__ = ["Adapter", "BLRContextAdapter", "ContextModelAdapter", "EncoderAdapter", "GradientAdapter", "LinearModel", "ModelHead", "SetEncoder", "State", "SupportSpec"]
