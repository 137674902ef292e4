"""Your own Gymnasium environment as a metadqn task family, then meta-trained and adapted.

    python examples/custom_family.py [--iterations 100]

The environment (``Corridor``) stands for yours: anything registered with Gymnasium, with a
Discrete action space and a Box observation space, whose parameters you can set.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import metadqn
from metadqn.families import from_gymnasium, register_family


class Corridor(gym.Env):
    """Walk along a corridor of ``length`` cells to a hidden ``goal``; moves slip with prob. ``slip``."""

    def __init__(self, length: int = 10):
        self.length, self.goal, self.slip = length, length - 1, 0.0
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)  # left, stay, right

    def _obs(self):
        return np.array([self.pos / (self.length - 1)], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.length // 2
        return self._obs(), {}

    def step(self, action):
        move = int(action) - 1
        if self.np_random.random() < self.slip:
            move = -move
        self.pos = int(np.clip(self.pos + move, 0, self.length - 1))
        done = self.pos == self.goal
        return self._obs(), 0.0 if done else -abs(self.pos - self.goal) / self.length, done, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=20)

# ---- the family: these few lines are all it takes ----------------------------------------
def corridor_family(**options):
    return from_gymnasium("Corridor-v0", params={"goal": (0, 9), "slip": (0.0, 0.2)}, integer=["goal"],
                          defaults={"goal": 9, "slip": 0.0}, name="corridor", **options)


register_family("corridor", corridor_family, overwrite=True)  # now `make_family("corridor")` works
# -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    family = metadqn.make_family("corridor")
    train, test = family.split(n_train=6, n_test=3, seed=0)
    learner = metadqn.MAMLDQN(family, iterations=args.iterations, envs_per_task=4, eval_every=0,
                              checkpoint_every=0, net={"hidden": [32, 32]})
    learner.meta_train(train)
    result = learner.adaptation_returns(test, steps=(0, 3), runs=4)
    for i, task in enumerate(test):
        before, after = (float(result["return"][k][i].mean()) for k in (0, 3))
        print(f"task {task.params}: greedy return before adaptation {before:+.2f}, after 3 steps {after:+.2f}")


if __name__ == "__main__":
    main()
