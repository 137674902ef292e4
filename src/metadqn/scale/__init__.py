"""Scale-out on Ray (optional extra ``metadqn[ray]``): rollout workers for slow simulators
(:mod:`.rollout`) and hyperparameter/seed sweeps with Ray Tune (:mod:`.sweep`)."""

from .cluster import ScaleError, connect
from .rollout import RolloutWorkers, make_batched, rollout_workers

__all__ = ["RolloutWorkers", "ScaleError", "connect", "make_batched", "rollout_workers"]
