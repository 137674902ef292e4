"""Kept so that ``from metadqn.agents import DQN, DQNConfig`` still works; DQN lives in
:mod:`metadqn.dqn_agent`."""

from .dqn_agent import DQN, DQNConfig

__all__ = ["DQN", "DQNConfig"]
