"""The information limit: gridnav's exact posterior and best frozen plan against brute force
on a tiny grid, the bandit's Beta-posterior choice by hand, and the limit's place in the
evaluation (same data as random-exploration methods)."""

import itertools

import numpy as np
import pytest
import torch

import metadqn
from metadqn.adaptation import new_task_data
from metadqn.limits import limit_returns


def _rewards_along(family, task, goal, actions):
    """Rewards and terminations of an action sequence on ``task`` moved to ``goal`` (the env itself)."""
    env = family.make_batched([family.task(**{**task.params, "goal": list(goal)})], 1, seed=0)
    env.reset()
    rewards, terms = [], []
    for a in actions:
        out = env.step(torch.tensor([[a]]))
        rewards.append(float(out.reward[0, 0]))
        terms.append(bool(out.terminated[0, 0]))
        if out.done[0, 0]:
            break
    return rewards, terms


@pytest.mark.parametrize("options", [{"size": 3, "horizon": 5}, {"size": 4, "horizon": 4, "reward": "sparse"},
                                     {"size": 4, "horizon": 5, "obstacles": 3}])
def test_gridnav_posterior_and_best_frozen_plan_match_brute_force(options):
    family = metadqn.make_family("gridnav", **options)
    tasks = family.sample_tasks(6, seed=1)
    buf, _ = new_task_data(family, tasks, runs_per_task=1, episodes=1, adapter=None, seed=4)
    h = family.max_episode_steps
    for i, task in enumerate(tasks):
        data = {k: getattr(buf, k)[i, :h, 0].numpy() for k in ("obs", "action", "reward", "next_obs", "terminated")}
        goals = family.goal_posterior(task, data)
        # posterior by brute force: every free goal whose env reproduces the observed rewards/terminations
        episode_end = int(np.flatnonzero(data["terminated"])[0]) + 1 if data["terminated"].any() else h
        actions = data["action"][:episode_end].tolist()
        walls, start = family.walls(task), family.start_cell()
        brute = [g for g in itertools.product(range(family.size), repeat=2)
                 if not walls[g] and g != start
                 and _rewards_along(family, task, g, actions) == (pytest.approx(data["reward"][:episode_end].tolist(), abs=1e-5),
                                                            data["terminated"][:episode_end].tolist())]
        assert sorted(goals) == sorted(brute) and tuple(task["goal"]) in goals
        if len(goals) > family.MAX_LIMIT_GOALS:
            continue
        # the DP's plan is the best open-loop plan for the posterior (every action sequence tried)
        def value(path):
            return np.mean([family._path_return(task, g, path) for g in goals])
        best = max(value(p) for p in itertools.product(range(4), repeat=h))
        assert value(family._best_path(task, goals)) == pytest.approx(best, abs=1e-9)
        assert family.frozen_limit_return(task, data) == pytest.approx(family._path_return(
            task, tuple(task["goal"]), family._best_path(task, goals)))


def test_bandit_limit_pulls_the_arm_with_the_best_beta_posterior_mean():
    family = metadqn.make_family("bandit", arms=3, horizon=10)
    task = family.task(means=[0.2, 0.5, 0.9])
    # arm 0: 2/2 wins (posterior 3/4), arm 1: 0/1 (1/3), arm 2: 3/5 (4/7): arm 0 wins on the data
    data = {"action": np.array([0, 0, 1, 2, 2, 2, 2, 2]), "reward": np.array([1, 1, 0, 1, 1, 1, 0, 0.0])}
    assert family.frozen_limit_return(task, data) == pytest.approx(10 * 0.2)
    tie = {"action": np.array([0, 2]), "reward": np.array([1.0, 1.0])}
    assert family.frozen_limit_return(task, tie) == pytest.approx(10 * (0.2 + 0.9) / 2)
    narrowed = metadqn.make_family("bandit", arms=3, horizon=10, ranges={"means": (0.1, 0.9)})
    assert narrowed.frozen_limit_return(narrowed.task(means=[0.2, 0.5, 0.9]), data) is None


def test_limit_uses_the_data_random_exploration_methods_see():
    family = metadqn.make_family("bandit")
    tasks = family.sample_tasks(3, seed=2)
    lim = limit_returns(family, tasks, kind="frozen", runs_per_task=4, episodes=1, seed=7)
    assert lim.shape == (3, 4)
    oracle = np.array([family.oracle_return(t) for t in tasks])
    assert np.all(lim <= oracle[:, None] + 1e-9)
    cartpole = metadqn.make_family("cartpole-physics")
    assert limit_returns(cartpole, cartpole.sample_tasks(1), kind="frozen", runs_per_task=1, episodes=1) is None


def test_online_limit_is_at_least_the_frozen_one_and_the_optimum_when_the_goal_is_known():
    family = metadqn.make_family("gridnav", size=5)
    tasks = family.sample_tasks(8, seed=3)
    buf, _ = new_task_data(family, tasks, runs_per_task=1, episodes=1, adapter=None, seed=1)
    for i, task in enumerate(tasks):
        data = {k: getattr(buf, k)[i, :, 0].numpy() for k in ("obs", "action", "reward", "next_obs", "terminated")}
        # in expectation over the posterior (every consistent goal as the truth), updating beliefs never loses
        moved = [family.task(**{**task.params, "goal": list(g)}) for g in family.goal_posterior(task, data)]
        online = np.mean([family.online_limit_return(t, data) for t in moved])
        frozen = np.mean([family.frozen_limit_return(t, data) for t in moved])
        assert online >= frozen - 1e-9
    online = limit_returns(family, tasks, kind="online", runs_per_task=3, episodes=1, seed=1)
    none = limit_returns(family, tasks, kind="online", runs_per_task=1, episodes=0, seed=1)  # no support at all
    assert none.mean() < online.mean()
    task = tasks[0]
    known = {"next_obs": np.zeros((0, 2)), "reward": np.zeros(0), "terminated": np.zeros(0, dtype=bool)}
    family.goal_posterior = lambda t, d: [tuple(t["goal"])]  # a singleton posterior
    assert family.online_limit_return(task, known) == pytest.approx(family.oracle_return(task))
    assert family.frozen_limit_return(task, known) == pytest.approx(family.oracle_return(task))
