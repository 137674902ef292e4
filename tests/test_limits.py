"""The information limit: gridnav's exact posterior and best frozen plan against brute force
on a tiny grid, the bandit's Beta-posterior choice by hand, and the limit's place in the
evaluation (same data as random-exploration methods)."""

import functools
import itertools

import numpy as np
import pytest
import torch

import metadqn
from metadqn.adaptation import new_task_data
from metadqn.limits import limit_returns
from metadqn.tasks.grid import successors
from metadqn.tasks.bandit_limits import MAX_STATES, bayes_adaptive_returns, state_count


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


def _memoryless_value(family, task, goals, actions):
    """Mean return over ``goals`` of an action sequence, or None where no map from cell to action
    follows it: a cell left twice by different actions before the last goal's episode ends."""
    nxt, n = successors(family.walls(task)), family.size
    cells, cell = [], family.start_cell()[0] * n + family.start_cell()[1]
    for a in actions:
        cells.append(cell)
        cell = nxt[cell, a]
    ends = [next((t + 1 for t in range(len(actions)) if nxt[cells[t], actions[t]] == g[0] * n + g[1]), len(actions))
            for g in goals]
    chosen = {}
    for c, a in zip(cells[:max(ends)], actions[:max(ends)]):
        if chosen.setdefault(c, a) != a:
            return None
    return np.mean([family._path_return(task, g, actions) for g in goals])


@pytest.mark.parametrize("options, bites", [({"size": 3, "horizon": 5}, True),
                                            ({"size": 4, "horizon": 5, "reward": "sparse"}, False),
                                            ({"size": 4, "horizon": 5, "obstacles": 3}, True)])
def test_gridnav_best_memoryless_plan_matches_brute_force_and_can_lose_to_the_open_loop_one(options, bites):
    family = metadqn.make_family("gridnav", **options)
    tasks = family.sample_tasks(4, seed=2)
    rng = np.random.default_rng(0)
    gaps = []
    for task in tasks:
        free = [g for g in itertools.product(range(family.size), repeat=2)
                if not family.walls(task)[g] and g != family.start_cell() and g != tuple(task["goal"])]
        for _ in range(3):  # posteriors of 2-4 goals, the task's own among them
            picks = rng.choice(len(free), int(rng.integers(1, 4)), replace=False)
            goals = [tuple(task["goal"])] + [free[i] for i in picks]
            plan = family._best_memoryless_path(task, goals)
            # every action sequence a map from cell to action can follow
            best = max(v for p in itertools.product(range(4), repeat=family.max_episode_steps)
                       if (v := _memoryless_value(family, task, goals, p)) is not None)
            assert _memoryless_value(family, task, goals, plan) == pytest.approx(best, abs=1e-9)
            open_loop = np.mean([family._path_return(task, g, family._best_path(task, goals)) for g in goals])
            assert best <= open_loop + 1e-9
            gaps.append(open_loop - best)
    if bites:  # somewhere the best tour must cross its own path, which no map of the cell can follow
        assert max(gaps) > 0.2
    data = {"next_obs": np.zeros((0, 2)), "reward": np.zeros(0), "terminated": np.zeros(0, dtype=bool)}
    family.goal_posterior = lambda t, d: [tuple(t["goal"])]  # a singleton posterior: the shortest path
    assert family.memoryless_limit_return(tasks[0], data) == pytest.approx(family.oracle_return(tasks[0]))


def test_memoryless_limit_through_limit_returns_and_where_it_is_not_known():
    family = metadqn.make_family("gridnav", size=5)
    tasks = family.sample_tasks(3, seed=3)
    memoryless = limit_returns(family, tasks, kind="memoryless", runs_per_task=2, episodes=1, seed=1)
    assert memoryless.shape == (3, 2)
    assert np.all(memoryless <= np.array([family.oracle_return(t) for t in tasks])[:, None] + 1e-9)
    history = metadqn.make_family("gridnav-history", size=5)  # its Q-network has memory: no such reference
    assert limit_returns(history, history.sample_tasks(1), kind="memoryless", runs_per_task=1, episodes=1) is None
    with pytest.raises(ValueError, match="limit kind"):
        limit_returns(family, tasks, kind="markov", runs_per_task=1, episodes=1)


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


def _bayes_bandit_by_recursion(alpha, beta, means, pulls):
    """The Bayes-adaptive policy's value under the belief and expected return on ``means``,
    by plain memoized recursion over the posteriors (ties shared)."""
    @functools.lru_cache(None)
    def value(post, left):
        if left == 0:
            return 0.0, 0.0
        arms = []
        for i, (a, b) in enumerate(post):
            win = value(post[:i] + ((a + 1, b),) + post[i + 1:], left - 1)
            loss = value(post[:i] + ((a, b + 1),) + post[i + 1:], left - 1)
            p = a / (a + b)
            arms.append((p * (1 + win[0]) + (1 - p) * loss[0], means[i] * (1 + win[1]) + (1 - means[i]) * loss[1]))
        best = max(q for q, _ in arms)
        tied = [r for q, r in arms if q >= best - 1e-9]
        return best, sum(tied) / len(tied)
    return value(tuple(zip(alpha, beta)), pulls)


def test_bandit_online_limit_dynamic_program_matches_recursion():
    rng = np.random.default_rng(0)
    alpha = np.vstack([np.ones(3), 1 + rng.integers(0, 4, (5, 3))])    # first row: no data, all arms tied
    beta = np.vstack([np.ones(3), 1 + rng.integers(0, 4, (5, 3))])
    means = rng.random((6, 3))
    value, ret = bayes_adaptive_returns(alpha, beta, means, 5)
    for i in range(6):
        v, r = _bayes_bandit_by_recursion(alpha[i].tolist(), beta[i].tolist(), means[i].tolist(), 5)
        assert value[i] == pytest.approx(v, rel=1e-5) and ret[i] == pytest.approx(r, rel=1e-5)
        # updating the belief never loses against pulling the best posterior mean throughout
        assert value[i] >= 5 * max(alpha[i] / (alpha[i] + beta[i])) - 1e-5


def test_bandit_online_limit_through_the_family():
    family = metadqn.make_family("bandit", arms=3, horizon=6)
    task = family.task(means=[0.2, 0.5, 0.9])
    # a support that has all but settled the means: the online limit is the optimum
    settled = {"action": np.repeat([0, 1, 2], 400),
               "reward": np.concatenate([np.arange(400) < m * 400 for m in (0.2, 0.5, 0.9)]).astype(float)}
    assert family.online_limit_return(task, settled) == pytest.approx(family.oracle_return(task), rel=1e-5)
    tasks = family.sample_tasks(4, seed=1)
    online = limit_returns(family, tasks, kind="online", runs_per_task=3, episodes=1, seed=2)
    none = limit_returns(family, tasks, kind="online", runs_per_task=3, episodes=0, seed=2)
    assert online.shape == none.shape == (4, 3)
    oracle = np.array([family.oracle_return(t) for t in tasks])
    assert np.all(online <= oracle[:, None] + 1e-5) and np.all(none <= oracle[:, None] + 1e-5)
    # the default bandit (5 arms, 20 pulls) is under the cap; bigger ones and narrowed priors get no limit
    assert state_count(5, 20) <= MAX_STATES
    eight = metadqn.make_family("bandit", arms=8)
    assert eight.online_limit_return(eight.task(means=[0.5] * 8), settled) is None
    narrowed = metadqn.make_family("bandit", arms=3, horizon=6, ranges={"means": (0.1, 0.9)})
    assert narrowed.online_limit_return(narrowed.task(means=[0.2, 0.5, 0.9]), settled) is None


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


def test_a_history_familys_limit_is_its_base_familys_on_the_newest_step_of_each_window():
    base = metadqn.make_family("gridnav", size=5)
    family = metadqn.families.with_history(base, 4)
    tasks = family.sample_tasks(4, seed=3)
    frozen = limit_returns(family, tasks, kind="frozen", runs_per_task=2, episodes=1, seed=1)
    online = limit_returns(family, tasks, kind="online", runs_per_task=2, episodes=1, seed=1)
    assert frozen.shape == online.shape == (4, 2)
    buf, _ = new_task_data(family, tasks, runs_per_task=2, episodes=1, adapter=None, seed=1, extra_capacity=1)
    held = min(buf.steps, buf.slots)
    for row in range(8):
        task = base.task(**tasks[row // 2].params)
        windows = {k: getattr(buf, k)[row, :held, 0].numpy() for k in ("obs", "action", "reward", "next_obs",
                                                                         "terminated")}
        assert windows["obs"].shape[1:] == (4, 3)
        data = {**windows, "obs": windows["obs"][:, -1, :2], "next_obs": windows["next_obs"][:, -1, :2]}
        assert tuple(task["goal"]) in base.goal_posterior(task, data)  # the windows were read as positions
        assert frozen[row // 2, row % 2] == pytest.approx(base.frozen_limit_return(task, data))
        assert online[row // 2, row % 2] == pytest.approx(base.online_limit_return(task, data))
        assert online[row // 2, row % 2] <= base.oracle_return(task) + 1e-9


def test_gridnav_pixels_has_the_same_posterior_and_limits_as_gridnav_seen_as_coordinates():
    options = {"size": 5, "obstacles": 3}
    coords, pixels = metadqn.make_family("gridnav", **options), metadqn.make_family("gridnav-pixels", **options)
    tasks = pixels.sample_tasks(6, seed=2)
    data = {}
    for name, family in (("coords", coords), ("pixels", pixels)):
        buf, _ = new_task_data(family, [family.task(**t.params) for t in tasks], runs_per_task=1, episodes=1,
                               adapter=None, seed=4)
        data[name] = [{k: getattr(buf, k)[i, :, 0].numpy() for k in ("obs", "action", "reward", "next_obs", "terminated")}
                      for i in range(len(tasks))]
    sizes = []
    for i, task in enumerate(tasks):
        assert np.array_equal(pixels.cells_of(data["pixels"][i]["next_obs"]), coords.cells_of(data["coords"][i]["next_obs"]))
        posterior = pixels.goal_posterior(task, data["pixels"][i])
        twin = coords.task(**task.params)
        assert tuple(task["goal"]) in posterior and posterior == coords.goal_posterior(twin, data["coords"][i])
        sizes.append(len(posterior))
    assert max(sizes) < 20  # the rewards told the goals apart
    twins = [coords.task(**t.params) for t in tasks]
    for kind, episodes in (("frozen", 1), ("online", 1), ("online", 0)):
        assert np.allclose(limit_returns(pixels, tasks, kind=kind, runs_per_task=2, episodes=episodes, seed=4),
                           limit_returns(coords, twins, kind=kind, runs_per_task=2, episodes=episodes, seed=4))


def test_a_timed_familys_limits_are_its_base_familys_on_the_same_episodes():
    base = metadqn.make_family("gridnav", size=5)
    family = metadqn.families.with_time(base)
    tasks = base.sample_tasks(4, seed=3)
    for kind in ("frozen", "online"):
        timed = limit_returns(family, tasks, kind=kind, runs_per_task=2, episodes=1, seed=1)
        plain = limit_returns(base, tasks, kind=kind, runs_per_task=2, episodes=1, seed=1)
        assert timed.shape == (4, 2)
        np.testing.assert_allclose(timed, plain)  # the same support episodes, read without t / H
