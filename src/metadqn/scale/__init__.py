"""Scale-out on Ray (optional extra ``metadqn[ray]``): rollout workers for slow simulators
(:mod:`.rollout`) and hyperparameter/seed sweeps with Ray Tune (:mod:`.sweep`)."""

from .cluster import ScaleError, connect
from .rollout import RolloutWorkers, rollout_workers

__all__ = ["RolloutWorkers", "ScaleError", "connect", "rollout_workers"]
