"""Meta-training throughput with 0, 1, 2 ... Ray rollout workers on a slow simulator.

    python benchmarks/scaling.py [--family slow-cartpole|highway] [--workers 0 1 2] [--step-ms 2]

``slow-cartpole``: Gymnasium's CartPole with varied gravity, each step made to cost
``--step-ms`` ms of CPU (a busy loop, like a simulator's physics; sleeping would free the core
and flatter the workers). ``highway``: the real highway-env (``metadqn[highway]``), tens of
steps/s per core. Env-steps/s are measured between the end of the warm-up iterations and the
end of the run inside one ``meta_train`` call (the actors' start-up, a few seconds once per run,
is excluded and printed apart). Efficiency = speed-up / workers.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch

from metadqn import MAMLDQN
from metadqn.families import from_gymnasium
from metadqn.scale import RolloutWorkers, connect
from metadqn.tasks import make_family


class SlowStep(gym.Wrapper):
    """Every step busy-waits ``ms`` milliseconds of CPU first."""

    def __init__(self, env: gym.Env, ms: float) -> None:
        super().__init__(env)
        self.ms = ms

    def step(self, action):
        end = time.perf_counter() + self.ms / 1000
        while time.perf_counter() < end:
            pass
        return self.env.step(action)


def slow_cartpole(ms: float):
    gym.register("SlowCartPole-v1", entry_point=lambda **kw: SlowStep(gym.make("CartPole-v1").unwrapped, ms),
                 max_episode_steps=200)
    return from_gymnasium("SlowCartPole-v1", {"gravity": (5.0, 15.0)}, name="slow-cartpole")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="slow-cartpole", choices=["slow-cartpole", "highway"])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--step-ms", type=float, default=2.0)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--envs", type=int, default=2, help="envs per task")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--algo", default="maml")
    args = ap.parse_args()
    torch.set_num_threads(1)
    family = slow_cartpole(args.step_ms) if args.family == "slow-cartpole" else make_family("highway")
    train, _ = family.split(args.tasks, 0, seed=0)
    connect()
    print(f"family={family.name} tasks={args.tasks} envs/task={args.envs} horizon={family.max_episode_steps} "
          f"algo={args.algo} iterations={args.iterations} (+{args.warmup} warm-up)"
          + (f" step cost={args.step_ms} ms" if args.family == "slow-cartpole" else ""))
    print("| rollout workers | env-steps/s | speed-up | efficiency | start-up s |\n|---|---|---|---|---|")
    base = None
    for n in args.workers:
        stamps: list[float] = []
        learner = MAMLDQN(family, algo=args.algo, envs_per_task=args.envs, eval_every=0, seed=0)
        t0 = time.perf_counter()
        learner.meta_train(train, iterations=args.warmup + args.iterations, progress=False,
                           workers=RolloutWorkers(n) if n else None,
                           callback=lambda lrn, row: stamps.append(time.perf_counter()))
        per_iter = learner.env_steps_per_iteration
        first_iter = stamps[1] - stamps[0] if len(stamps) > 1 else 0.0
        startup = (stamps[0] - t0) - first_iter  # the first iteration's time beyond a steady one
        speed = args.iterations * per_iter / (stamps[-1] - stamps[args.warmup - 1])
        base = base or speed
        print(f"| {n} | {speed:,.0f} | {speed / base:.2f}x | "
              + (f"{speed / base / n:.0%}" if n else "—") + f" | {max(startup, 0.0):.1f} |", flush=True)


if __name__ == "__main__":
    main()
