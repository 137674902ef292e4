"""Kept so that ``from metadqn.train import MAMLDQN, MetaConfig, summarize`` (the 0.1 README)
still works; the meta-learner lives in :mod:`metadqn.learner`."""

from .learner import MAMLDQN, MetaConfig, summarize

__all__ = ["MAMLDQN", "MetaConfig", "summarize"]
