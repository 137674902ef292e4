"""Our DQN vs Stable-Baselines3's DQN on CartPole-v1: same env-step budget, one run.

SB3 runs with the RL-Zoo's tuned CartPole-v1 hyperparameters; ours with its defaults
(which mirror them: lr 2.3e-3, batch 64, 0.5 gradient steps per env step, [epsilon 1 ->
0.04 over 16%]) but 8 batched environments and a [64, 64] network. Reported per seed:
env-steps/s of the whole training run and the final greedy return over 20 episodes;
then the mean ratio of throughputs.

    pip install stable-baselines3
    python benchmarks/dqn_vs_sb3.py [--steps 50000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

from metadqn.dqn_agent import DQN


def sb3_run(steps: int, seed: int) -> tuple[float, float]:
    from stable_baselines3 import DQN as SB3DQN
    env = gym.make("CartPole-v1")
    model = SB3DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                   gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                   exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
                   seed=seed, device="cpu", verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=steps)
    rate = steps / (time.perf_counter() - t)
    returns = []
    for ep in range(20):
        obs, _ = env.reset(seed=10_000 + ep)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(int(action))
            total += r
            done = term or trunc
        returns.append(total)
    return rate, float(np.mean(returns))


def ours_run(steps: int, seed: int) -> tuple[float, float]:
    agent = DQN("cartpole-physics", total_steps=steps, seed=seed)
    agent.learn(progress=False)
    # agent.train_seconds includes the periodic greedy evaluations, as SB3's would not
    rate = steps / agent.train_seconds
    env = gym.make("CartPole-v1")  # final evaluation on Gymnasium's own CartPole-v1
    returns = []
    for ep in range(20):
        obs, _ = env.reset(seed=10_000 + ep)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(int(agent.predict(obs)))
            total += r
            done = term or trunc
        returns.append(total)
    return rate, float(np.mean(returns))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'seed':>4} {'ours steps/s':>13} {'sb3 steps/s':>12} {'ratio':>6} {'ours return':>12} {'sb3 return':>11}")
    for seed in args.seeds:
        o_rate, o_ret = ours_run(args.steps, seed)
        s_rate, s_ret = sb3_run(args.steps, seed)
        rows.append({"seed": seed, "ours_steps_per_s": o_rate, "sb3_steps_per_s": s_rate, "ours_return": o_ret,
                     "sb3_return": s_ret})
        print(f"{seed:>4} {o_rate:>13.0f} {s_rate:>12.0f} {o_rate / s_rate:>5.2f}x {o_ret:>12.1f} {s_ret:>11.1f}", flush=True)
    ratio = np.mean([r["ours_steps_per_s"] / r["sb3_steps_per_s"] for r in rows])
    print(f"mean throughput ratio ours/sb3: {ratio:.2f}x; mean greedy return ours "
          f"{np.mean([r['ours_return'] for r in rows]):.1f} vs sb3 {np.mean([r['sb3_return'] for r in rows]):.1f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
