"""Time-to-solve: our DQN vs Stable-Baselines3's DQN, the same network, measured the same way.

    pip install 'metadqn[bench]'
    python benchmarks/dqn_vs_sb3.py [--task cartpole|acrobot] [--seeds 0 1 2] [--settings own|same]

Both learn from scratch; every ``--eval-every`` env steps the clock stops and the current
greedy policy plays ``--eval-episodes`` episodes of Gymnasium's own env (``CartPole-v1`` /
``Acrobot-v1``, the same episode seeds for both); the time-to-solve is the training
wall-clock (evaluations excluded) until that mean return first reaches the threshold (475 /
−100). A run that has not solved within ``--max-steps`` env steps is reported as not solved.

``--settings own`` (default): each at its own best settings — SB3 with RL-Zoo's tuned
hyperparameters for the task, ours with its defaults for the family (``DQNConfig()`` and the
family's recommended settings, ``DQN_FAMILY_DEFAULTS`` — none for CartPole), both with the
RL-Zoo's network ([256, 256] for CartPole, [256, 256] for Acrobot). ``--settings same``: ours
with SB3's RL-Zoo hyperparameters mapped one to one (one environment, the same update
schedule, batch, buffer, target period, exploration), for transparency.

Ours trains on metadqn's batched torch version of the env (``cartpole-physics`` /
``acrobot-physics`` default task); its evaluation plays Gymnasium's env like SB3's does.
One torch thread each, one run at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from metadqn.dqn_agent import DQN, DQNConfig
from metadqn.nets import NetSpec

TASKS = {
    # RL-Zoo (rl-baselines3-zoo hyperparams/dqn.yml)
    "cartpole": {"env": "CartPole-v1", "family": "cartpole-physics", "threshold": 475.0, "max_steps": 100_000,
                 "zoo": dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                             gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                             exploration_fraction=0.16, exploration_final_eps=0.04, net_arch=[256, 256])},
    "acrobot": {"env": "Acrobot-v1", "family": "acrobot-physics", "threshold": -100.0, "max_steps": 100_000,
                "zoo": dict(learning_rate=6.3e-4, batch_size=128, buffer_size=50_000, learning_starts=0,
                            gamma=0.99, target_update_interval=250, train_freq=4, gradient_steps=-1,
                            exploration_fraction=0.12, exploration_final_eps=0.1, net_arch=[256, 256])},
}


def greedy_return(env_id: str, act: Callable[[np.ndarray], int], episodes: int) -> float:
    env = gym.make(env_id)
    total = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += float(r)
            done = term or trunc
    env.close()
    return total / episodes


class Clock:
    """Training wall-clock with evaluations taken out; records when the threshold was reached."""

    def __init__(self, env_id: str, threshold: float, episodes: int) -> None:
        self.env_id, self.threshold, self.episodes = env_id, threshold, episodes
        self.start, self.paused, self.solved_s, self.solved_steps, self.curve = time.perf_counter(), 0.0, None, None, []

    def check(self, steps: int, act: Callable[[np.ndarray], int]) -> bool:
        """Evaluate now (not timed); True once solved."""
        t = time.perf_counter()
        ret = greedy_return(self.env_id, act, self.episodes)
        elapsed = t - self.start - self.paused
        self.paused += time.perf_counter() - t
        self.curve.append((steps, round(elapsed, 2), ret))
        if ret >= self.threshold and self.solved_s is None:
            self.solved_s, self.solved_steps = elapsed, steps
        return self.solved_s is not None


def sb3_run(task: dict[str, Any], seed: int, eval_every: int, episodes: int, max_steps: int) -> Clock:
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    zoo = dict(task["zoo"])
    net_arch = zoo.pop("net_arch")
    model = SB3DQN("MlpPolicy", gym.make(task["env"]), policy_kwargs={"net_arch": net_arch}, seed=seed,
                   device="cpu", verbose=0, **zoo)
    model.set_logger(Logger(folder=None, output_formats=[]))  # no log: SB3 would leave an empty /tmp/SB3-* per run
    clock = Clock(task["env"], task["threshold"], episodes)

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every:
                return True
            return not clock.check(self.num_timesteps, lambda o: int(model.predict(o, deterministic=True)[0]))

    clock.start = time.perf_counter()
    model.learn(total_timesteps=max_steps, callback=Check())
    return clock


def ours_config(task: dict[str, Any], settings: str, max_steps: int, seed: int,
                extra: dict[str, Any] | None = None) -> DQNConfig:
    net = NetSpec(hidden=list(task["zoo"]["net_arch"]))
    if settings == "own":  # DQNConfig's defaults and the family's recommended settings, as DQN(family) takes them
        values = dict(total_steps=max_steps, net=net, seed=seed, eval_every=0, **(extra or {}))
        return DQNConfig(**{**DQNConfig.family_defaults(task["family"], values), **values})
    zoo = task["zoo"]
    grad_steps = zoo["gradient_steps"] if zoo["gradient_steps"] > 0 else zoo["train_freq"]
    return DQNConfig(total_steps=max_steps, n_envs=1, net=net, lr=zoo["learning_rate"], batch_size=zoo["batch_size"],
                     buffer_size=zoo["buffer_size"], learning_starts=zoo["learning_starts"],
                     updates_per_step=grad_steps / zoo["train_freq"], gamma=zoo["gamma"], n_step=1, double=False,
                     target_update=_target_period(zoo, grad_steps),
                     eps_fraction=zoo["exploration_fraction"], eps_end=zoo["exploration_final_eps"],
                     grad_clip=10.0, eval_every=0, seed=seed)


def _target_period(zoo: dict[str, Any], grad_steps: int) -> int:
    """SB3's target copy period (env steps) in our units (gradient steps). SB3 trains in bursts
    of ``gradient_steps`` every ``train_freq`` env steps and copies between bursts, so with
    ``train_freq >= target_update_interval`` the target moves once per burst."""
    if zoo["train_freq"] >= zoo["target_update_interval"]:
        return grad_steps
    return max(1, round(zoo["target_update_interval"] * grad_steps / zoo["train_freq"]))


def ours_run(task: dict[str, Any], seed: int, eval_every: int, episodes: int, max_steps: int,
             settings: str, extra: dict[str, Any] | None = None) -> tuple[Clock, DQNConfig]:
    cfg = ours_config(task, settings, max_steps, seed, extra)
    agent = DQN(task["family"], config=cfg)
    clock = Clock(task["env"], task["threshold"], episodes)

    def act(obs: np.ndarray) -> int:
        return int(agent.predict(obs))

    clock.start = time.perf_counter()
    agent.learn(progress=False, callback=lambda a, steps: not clock.check(steps, act), callback_every=eval_every)
    return clock, cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="cartpole", choices=list(TASKS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", default="own", choices=["own", "same"])
    ap.add_argument("--eval-every", type=int, default=2_000, help="env steps between (untimed) evaluations")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--only", choices=["ours", "sb3"], default=None)
    ap.add_argument("--json", default=None, help="write every run's evaluation curve here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override one of our DQNConfig fields with --settings own (repeatable), e.g. --set lr=1e-3")
    args = ap.parse_args()
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    if extra and args.settings != "own":
        ap.error("--set changes our own settings: use it with --settings own")
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer imports torch._dynamo (~1.7 s, once per process): not either side's cost
    task = TASKS[args.task]
    max_steps = args.max_steps or task["max_steps"]
    print(f"{task['env']}: time until the greedy return ({args.eval_episodes} episodes, every {args.eval_every} env "
          f"steps, untimed) reaches {task['threshold']:g}; settings={args.settings}{' ' + str(extra) if extra else ''}; max {max_steps} env steps")
    print("| seed | ours s | ours env steps | SB3 s | SB3 env steps | SB3 / ours |\n|---|---|---|---|---|---|")
    runs, ratios, ours_s, sb3_s = [], [], [], []
    for seed in args.seeds:
        ours = sb3 = None
        if args.only != "sb3":
            ours, cfg = ours_run(task, seed, args.eval_every, args.eval_episodes, max_steps, args.settings, extra)
        if args.only != "ours":
            sb3 = sb3_run(task, seed, args.eval_every, args.eval_episodes, max_steps)

        def cell(c: Clock | None) -> tuple[str, str]:
            if c is None:
                return "—", "—"
            if c.solved_s is None:
                return "not solved", f"> {max_steps}"
            return f"{c.solved_s:.1f}", f"{c.solved_steps}"

        ratio = (sb3.solved_s / ours.solved_s) if ours and sb3 and ours.solved_s and sb3.solved_s else None
        if ratio:
            ratios.append(ratio)
        if ours and ours.solved_s:
            ours_s.append(ours.solved_s)
        if sb3 and sb3.solved_s:
            sb3_s.append(sb3.solved_s)
        print(f"| {seed} | {' | '.join(cell(ours))} | {' | '.join(cell(sb3))} | "
              + (f"{ratio:.1f}x" if ratio else "—") + " |", flush=True)
        runs.append({"seed": seed, "ours": ours and ours.curve, "sb3": sb3 and sb3.curve})
    if ours_s:
        print(f"ours: median {statistics.median(ours_s):.1f} s (min {min(ours_s):.1f}, max {max(ours_s):.1f}), "
              f"solved {len(ours_s)}/{len(args.seeds)}")
    if sb3_s:
        print(f"SB3: median {statistics.median(sb3_s):.1f} s (min {min(sb3_s):.1f}, max {max(sb3_s):.1f}), "
              f"solved {len(sb3_s)}/{len(args.seeds)}")
    if ours_s and sb3_s:
        print(f"median SB3 / median ours: {statistics.median(sb3_s) / statistics.median(ours_s):.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"task": args.task, "settings": args.settings, "runs": runs}, f)


if __name__ == "__main__":
    main()
