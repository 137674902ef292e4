"""Is Q-learning across players or identifying the player the bottleneck on `preference`?

A multi-task DQN on the family's training players, given each player's true weights w (an oracle
context: no identification needed) or not, scored greedily on the held-out players. The Q-network
reads w either next to the observation in its first layer (``concat``, as `net.context` does) or
also through FiLM on every hidden layer (``film``, as `net.film=true` does); ``none`` gives it no
w (the multitask baseline). Same updates, same data, one CPU thread.

    python benchmarks/preference_oracle.py --conditioning film --steps 200000 --updates-per-step 0.05

(10k updates of 40 players x 64 transitions: 5-8 min of training on one core of the dev machine beside other jobs,
then a minute for the exact references of the 20 held-out players.)
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import metadqn.dqn_agent as dqn_agent
from metadqn.dqn_agent import DQN, DQNConfig
from metadqn.tasks.preference import PreferenceBatched, PreferenceFamily


class Cued(PreferenceFamily):
    """preference whose observations end with the player's weights."""

    def __init__(self, **options):
        super().__init__(**options)
        size = self.observation_space.shape[0] + self.item_types
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (size,), dtype=np.float32)

    def make_batched(self, tasks, envs_per_task=1, device="cpu", seed=None, dtype=torch.float32):
        return CuedBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)


class CuedBatched(PreferenceBatched):
    def _observe(self):
        return torch.cat((super()._observe(), self.weights.expand(-1, self.envs_per_task, -1).float()), -1)


class ConditionedQ(nn.Module):
    """An MLP (64, 64) reading [observation, w]; with ``film`` w also scales and shifts each hidden
    layer, h * (1 + gamma(w)) + beta(w), as metadqn.nets.QNet does with net.film."""

    def __init__(self, obs_size: int, k: int, n_actions: int, film: bool) -> None:
        super().__init__()
        self.k = k
        self.fcs = nn.ModuleList([nn.Linear(obs_size, 64), nn.Linear(64, 64), nn.Linear(64, n_actions)])
        self.films = nn.ModuleList([nn.Linear(k, 128), nn.Linear(k, 128)]) if film else nn.ModuleList()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        w, h = obs[..., -self.k:], obs
        for i in range(2):
            h = F.relu(self.fcs[i](h))
            if len(self.films):
                scale, shift = self.films[i](w).chunk(2, -1)
                h = h * (1 + scale) + shift
        return self.fcs[2](h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conditioning", choices=("none", "concat", "film"), default="film")
    ap.add_argument("--steps", type=int, default=200_000, help="env steps summed over the players")
    ap.add_argument("--updates-per-step", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    family = PreferenceFamily() if args.conditioning == "none" else Cued()
    if args.conditioning != "none":
        k, film = family.item_types, args.conditioning == "film"
        dqn_agent.build_qnet = lambda spec, shape, n: ConditionedQ(shape[0], k, n, film)
    train, test = family.split(40, 20)
    agent = DQN(family, train, DQNConfig(total_steps=args.steps, n_step=1, lr=1e-3, eval_every=0, n_envs=1,
                                         updates_per_step=args.updates_per_step, seed=args.seed))
    t0 = time.perf_counter()
    agent.learn(progress=False)
    seconds = time.perf_counter() - t0
    ret = agent.evaluate(test, episodes=10).numpy().reshape(len(test), -1).mean(1)
    best = np.array([family.oracle_return(t) for t in test])
    rand = np.array([family.random_return(t) for t in test])
    nr = (ret - rand) / (best - rand)
    print(json.dumps({"conditioning": args.conditioning, "steps": args.steps, "updates_per_step": args.updates_per_step,
                      "seed": args.seed, "held_out_nr": round(float(nr.mean()), 3),
                      "ci95": round(float(1.96 * nr.std(ddof=1) / np.sqrt(len(nr))), 3), "train_s": round(seconds)}))


if __name__ == "__main__":
    main()
