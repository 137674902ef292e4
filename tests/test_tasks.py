"""Task families: Gymnasium compliance, equivalence with Gymnasium's CartPole, batched vs
single-env equivalence, exact DP optimum on small grids, reproducible splits, bad input."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import metadqn
from metadqn.tasks import TaskError
from metadqn.tasks.gridnav import bfs_distance

FAMILY_VARIANTS = [
    ("gridnav", {}),
    ("gridnav", {"obstacles": 12, "start": "random", "reward": "sparse"}),
    ("gridnav", {"size": 5, "start": "corner"}),
    ("cartpole-physics", {}),
    ("bandit", {}),
    ("bandit", {"arms": 3, "horizon": 7}),
    ("driving", {}),
    ("driving", {"horizon": 10}),
    ("gridnav-pixels", {}),
    ("gridnav-pixels", {"size": 5, "obstacles": 4, "cue_steps": 2}),
    ("gridnav", {"cue_steps": 2}),
    ("gridnav-memory", {"size": 5}),
    ("gridnav-history", {"size": 5, "obstacles": 3}),
    ("preference", {"reference_layouts": 4}),
    ("preference", {"size": 5, "items": 3, "item_types": 2, "pixels": True, "reference_layouts": 4}),
]


def test_registry_lists_the_built_in_families():
    assert {"gridnav", "cartpole-physics", "bandit", "driving", "gridnav-pixels", "acrobot-physics",
            "lunarlander-physics", "highway", "preference"} <= set(metadqn.list_families())


@pytest.mark.parametrize("name,options", FAMILY_VARIANTS)
def test_every_family_task_passes_check_env(name, options):
    family = metadqn.make_family(name, **options)
    for task in [family.default_task(), *family.sample_tasks(3, seed=1)]:
        env = family.make_env(task)
        check_env(env, skip_render_check=True)
        assert isinstance(env, gym.Env)


@pytest.mark.parametrize("name,options", FAMILY_VARIANTS)
def test_split_is_reproducible_and_disjoint(name, options):
    family = metadqn.make_family(name, **options)
    train, test = family.split(10, 8, seed=3)
    again_train, again_test = family.split(10, 8, seed=3)
    assert [t.key() for t in train] == [t.key() for t in again_train]
    assert [t.key() for t in test] == [t.key() for t in again_test]
    keys = [t.key() for t in train + test]
    assert len(set(keys)) == 18
    other, _ = family.split(10, 8, seed=4)
    assert [t.key() for t in other] != [t.key() for t in train]


def test_split_asking_for_more_tasks_than_exist_is_a_clear_error():
    family = metadqn.make_family("gridnav", size=3)  # 8 possible goals
    with pytest.raises(TaskError, match=r"only about 8 distinct tasks .*asked for 6 train \+ 6 test "
                                        r"\(ask for fewer, e.g. n_train_tasks=6, n_test_tasks=2\)"):
        family.split(6, 6)
    train, test = family.split(6, 2)  # the suggestion works
    assert len({t.key() for t in train + test}) == 8


def _gym_cartpole(task):
    env = gym.make("CartPole-v1").unwrapped
    env.gravity, env.masscart, env.masspole, env.length = task["gravity"], task["masscart"], task["masspole"], task["length"]
    env.force_mag = task["force_mag"] * task["force_sign"]
    # CartPoleEnv derives these in __init__ only: they must be recomputed by hand
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length
    return env


def test_cartpole_equals_gymnasium_step_for_step():
    family = metadqn.make_family("cartpole-physics")
    tasks = [family.default_task(), *family.sample_tasks(5, seed=0)]
    batched = family.make_batched(tasks, 4, seed=0, dtype=torch.float64)
    batched.reset()
    rng = np.random.default_rng(0)
    refs = [_gym_cartpole(t) for t in tasks]
    for _ in range(300):
        state = batched.state.clone()
        actions = torch.as_tensor(rng.integers(0, 2, size=(len(tasks), 4)))
        out = batched.step(actions)
        for i, ref in enumerate(refs):
            for j in range(4):
                ref.reset(seed=0)
                ref.state = state[i, j].numpy().copy()
                obs, reward, terminated, _, _ = ref.step(int(actions[i, j]))
                np.testing.assert_allclose(out.next_obs[i, j].numpy(), obs, rtol=1e-6, atol=1e-6)
                assert out.reward[i, j].item() == reward
                assert bool(out.terminated[i, j]) == terminated


def test_cartpole_setting_attributes_on_gymnasium_env_is_not_enough():
    """The known bug: changing masspole on a made CartPoleEnv leaves derived terms stale."""
    family = metadqn.make_family("cartpole-physics")
    task = family.task(masspole=0.5)
    naive = gym.make("CartPole-v1").unwrapped
    naive.masspole = task["masspole"]  # total_mass / polemass_length keep the defaults
    naive.reset(seed=0)
    naive.state = np.array([0.0, 0.0, 0.1, 0.0])
    naive_obs = naive.step(1)[0]
    batched = family.make_batched([task], 1, seed=0, dtype=torch.float64)
    batched.reset()
    batched.state[:] = torch.tensor([0.0, 0.0, 0.1, 0.0], dtype=torch.float64)
    ours = batched.step(torch.ones(1, 1, dtype=torch.long)).next_obs[0, 0].numpy()
    assert not np.allclose(ours, naive_obs, atol=1e-6)


def test_reversed_force_mirrors_the_push():
    family = metadqn.make_family("cartpole-physics")
    batched = family.make_batched([family.task(force_sign=1.0), family.task(force_sign=-1.0)], 1, seed=0)
    batched.reset()
    batched.state.zero_()
    out = batched.step(torch.ones(2, 1, dtype=torch.long))
    assert out.next_obs[0, 0, 1] > 0 > out.next_obs[1, 0, 1]


def _set_state(batched, i, j, single):
    """Copy environment (i, j)'s state of a batched env into a single TaskEnv."""
    inner = single._batched
    assert batched.state_names or type(batched).__name__ == "BanditBatched"
    for name in batched.state_names:
        getattr(inner, name)[0, 0] = getattr(batched, name)[i, j]
    inner.elapsed[0, 0] = batched.elapsed[i, j]


@pytest.mark.parametrize("name,options", [("gridnav", {}), ("gridnav", {"obstacles": 10, "start": "random"}),
                                          ("cartpole-physics", {}), ("bandit", {}), ("driving", {}),
                                          ("gridnav-pixels", {"start": "random", "cue_steps": 3}),
                                          ("gridnav", {"cue_steps": 2}), ("preference", {"reference_layouts": 4}),
                                          ("preference", {"size": 5, "items": 3, "pixels": True})])
def test_batched_equals_single_env(name, options):
    family = metadqn.make_family(name, **options)
    tasks = family.sample_tasks(4, seed=2)
    if name == "bandit":  # deterministic arms so the reward draw does not depend on the RNG stream
        tasks = [family.task(means=[0.0, 1.0, 0.0, 1.0, 1.0]), family.task(means=[1.0, 0.0, 1.0, 0.0, 0.0])]
    batched = family.make_batched(tasks, 3, seed=5, dtype=torch.float64)
    obs = batched.reset()
    singles = [[family.make_env(t) for _ in range(3)] for t in tasks]
    rng = np.random.default_rng(1)
    for _ in range(60):
        for i, row in enumerate(singles):
            for j, env in enumerate(row):
                env.reset(seed=0)
                _set_state(batched, i, j, env)
        actions = torch.as_tensor(rng.integers(0, batched.n_actions, size=batched.batch_shape))
        out = batched.step(actions)
        for i, row in enumerate(singles):
            for j, env in enumerate(row):
                s_obs, s_rew, s_term, s_trunc, _ = env.step(int(actions[i, j]))
                np.testing.assert_allclose(out.next_obs[i, j].numpy(), s_obs, rtol=1e-6, atol=1e-6)
                assert math.isclose(out.reward[i, j].item(), s_rew, abs_tol=1e-6)
                assert (bool(out.terminated[i, j]), bool(out.truncated[i, j])) == (s_term, s_trunc)
        obs = out.obs
    assert obs.shape == (len(tasks), 3, *family.observation_space.shape)


def test_batched_env_auto_resets_and_reports_episode_returns():
    family = metadqn.make_family("bandit", arms=2, horizon=5)
    batched = family.make_batched([family.task(means=[1.0, 0.0])], 2, seed=0)
    batched.reset()
    for t in range(5):
        out = batched.step(torch.zeros(1, 2, dtype=torch.long))
    assert out.terminated.all() and (out.episode_return == 5).all() and (out.episode_length == 5).all()
    assert (out.obs == 0).all() and (out.next_obs == 1).all()  # next_obs is terminal, obs is reset


def _brute_force_optimum(family, task):
    """Best undiscounted return by exhaustive search over action sequences (tiny grids)."""
    env = family.make_env(task)
    best = -math.inf

    def search(prefix):
        nonlocal best
        env.reset(seed=0)
        total, over = 0.0, False
        for a in prefix:
            _, r, term, trunc, _ = env.step(a)
            total += r
            if term or trunc:
                over = True
                break
        if over or len(prefix) == family.max_episode_steps:
            best = max(best, total)
            return
        for a in range(4):
            search(prefix + [a])

    search([])
    return best


@pytest.mark.parametrize("options", [{"size": 3, "horizon": 5}, {"size": 3, "horizon": 5, "reward": "sparse"},
                                     {"size": 4, "horizon": 6, "obstacles": 3, "start": "corner"}])
def test_value_iteration_matches_exhaustive_search_on_small_grids(options):
    family = metadqn.make_family("gridnav", **options)
    for task in family.sample_tasks(3, seed=0):
        assert family.oracle_return(task) == pytest.approx(_brute_force_optimum(family, task), abs=1e-6)


def test_gridnav_oracle_is_shortest_path_and_random_is_worse():
    family = metadqn.make_family("gridnav")
    for task in family.sample_tasks(5, seed=0):
        d = int(bfs_distance(family.walls(task), tuple(task["goal"]))[family.start_cell()])
        # dense reward: -(d-1)/N - ... - 1/N - 0 along the shortest path
        assert family.oracle_return(task) == pytest.approx(-d * (d - 1) / 2 / family.size)
        assert family.random_return(task) < family.oracle_return(task)


def test_bfs_distance_goes_around_walls_and_its_kept_table_is_read_only():
    walls = np.zeros((3, 3), dtype=bool)
    walls[1, 0] = walls[1, 1] = True                  # a wall across the middle but for the right column
    expect = np.array([[0, 1, 2], [np.inf, np.inf, 3], [6, 5, 4]])
    assert np.array_equal(bfs_distance(walls, (0, 0)), expect)
    again = bfs_distance(walls.copy(), (0, 0))       # the same layout from another array: the kept table
    assert np.array_equal(again, expect)
    with pytest.raises(ValueError, match="read-only"):
        again[0, 0] = 5.0                             # a caller cannot corrupt what later calls read
    walls[1, 1] = False                               # another layout: its own table
    assert bfs_distance(walls, (0, 0))[2, 0] == 4


def test_bandit_reference_returns():
    family = metadqn.make_family("bandit", arms=3, horizon=10)
    task = family.task(means=[0.2, 0.5, 0.8])
    assert family.oracle_return(task) == pytest.approx(8.0)
    assert family.random_return(task) == pytest.approx(5.0)


@pytest.mark.parametrize("call,match", [
    (lambda: metadqn.make_family("nope"), "unknown task family 'nope'"),
    (lambda: metadqn.make_family("gridnav", sise=8), "unknown option"),
    (lambda: metadqn.make_family("gridnav", start="middle"), "start must be one of"),
    (lambda: metadqn.make_family("cartpole-physics").task(gravty=9.8), "unknown parameter"),
    (lambda: metadqn.make_family("cartpole-physics").task(gravity=100.0), "out of range"),
    (lambda: metadqn.make_family("cartpole-physics").task(force_sign=0.5), "must be one of"),
    (lambda: metadqn.make_family("gridnav").task(goal=[4, 4]), "start cell"),
    (lambda: metadqn.make_family("gridnav").task(goal=[9, 1]), "out of range"),
    (lambda: metadqn.make_family("gridnav").task(goal=3), "shape"),
    (lambda: metadqn.make_family("bandit").task(means=[0.5, float("nan"), 0, 0, 0]), "finite"),
    (lambda: metadqn.make_family("gridnav", ranges={"gaol": (0, 1)}), "unknown parameter"),
])
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(TaskError, match=match):
        call()


def test_wrong_actions_get_a_clear_error():
    family = metadqn.make_family("gridnav")
    batched = family.make_batched(family.sample_tasks(2), 3)
    batched.reset()
    with pytest.raises(TaskError, match=r"shape \[task, env\] = \[2, 3\]"):
        batched.step(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TaskError, match="integers"):
        batched.step(torch.zeros(2, 3))
    with pytest.raises(TaskError, match=r"\[0, 3\]"):
        batched.step(torch.full((2, 3), 4))
    env = family.make_env()
    env.reset(seed=0)
    with pytest.raises(TaskError, match="not in Discrete"):
        env.step(7)


def test_ranges_option_restricts_sampling():
    family = metadqn.make_family("cartpole-physics", ranges={"gravity": (9.0, 10.0)})
    assert all(9.0 <= t["gravity"] <= 10.0 for t in family.sample_tasks(20, seed=0))


def test_gridnav_render_shows_agent_goal_and_walls():
    family = metadqn.make_family("gridnav", obstacles=5)
    env = family.make_env(family.sample_tasks(1, seed=0)[0], render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.count("A") == 1 and text.count("G") == 1 and text.count("#") == 5


def test_ranges_narrow_only_are_validated_and_are_saved_with_the_family_options():
    family = metadqn.make_family("cartpole-physics", ranges={"gravity": (8, 12)})
    assert family.options["ranges"] == {"gravity": [8.0, 12.0]}
    again = metadqn.make_family(family.name, **family.options)  # how a saved run is rebuilt
    assert again.param("gravity").low == 8.0 and again.param("gravity").high == 12.0
    assert all(8 <= t["gravity"] <= 12 for t in again.sample_tasks(20, seed=0))
    with pytest.raises(TaskError, match="may only narrow"):
        metadqn.make_family("cartpole-physics", ranges={"gravity": (-5, 12)})
    with pytest.raises(TaskError, match="pair of numbers"):
        metadqn.make_family("cartpole-physics", ranges={"gravity": 9.8})
    with pytest.raises(TaskError, match="low <= high"):
        metadqn.make_family("cartpole-physics", ranges={"gravity": (12, 8)})


def test_preference_dp_matches_every_action_sequence_on_a_tiny_arena():
    """Optimum = the best of all 4^H action sequences (the layout is seen, the env deterministic);
    the random policy's return = their mean; both through the environment itself."""
    import itertools
    family = metadqn.make_family("preference", size=3, items=2, item_types=2, horizon=4, reference_layouts=1)
    task = family.task(weights=[1.0, -0.5])
    cells, types = np.array([[0, 5]]), np.array([[0, 1]])
    best, rand = family.layout_returns(task["weights"], cells, types)
    seqs = list(itertools.product(range(4), repeat=4))
    env = family.make_batched([task], len(seqs), seed=0, dtype=torch.float64)
    env.reset()
    env.item_cell[:] = torch.as_tensor(cells[0])
    env.item_type[:] = torch.as_tensor(types[0])
    total, finished = torch.zeros(len(seqs), dtype=torch.float64), torch.zeros(len(seqs), dtype=torch.bool)
    for t in range(4):
        out = env.step(torch.as_tensor([[s[t] for s in seqs]]))
        total += torch.where(finished, 0.0, out.reward[0].double())
        finished |= out.done[0]
    assert best[0] == pytest.approx(float(total.max()), abs=1e-6)  # the env reports float32 rewards
    assert rand[0] == pytest.approx(float(total.mean()), abs=1e-6)
    assert family.oracle_return(task) > family.random_return(task)
    # planning with other weights, scored with the task's: the plan [1, 1] (take both items) is
    # optimal among the sequences, unique here; its return under [1, -0.5] is that sequence's
    plan = family.planned_returns([1.0, 1.0], task["weights"], cells, types)
    taken = family.planned_returns([1.0, -0.5], task["weights"], cells, types)
    assert taken[0] == pytest.approx(best[0])
    # the only 4-step sequence collecting both items: right (5, -0.5), up, left, left (0, +1)
    assert plan[0] == pytest.approx(float(total[seqs.index((3, 0, 2, 2))]), abs=1e-6) and plan[0] < taken[0]


def test_preference_egocentric_view_shows_items_and_walls_around_the_agent():
    family = metadqn.make_family("preference", size=4, items=2, item_types=2, reference_layouts=1)
    assert family.observation_space.shape == (3 * 7 * 7,)
    env = family.make_batched([family.task(weights=[1.0, -1.0])], 1, seed=0)
    env.reset()
    env.item_cell[:], env.item_type[:] = torch.tensor([1, 15]), torch.tensor([1, 0])   # (0, 1) type 1, (3, 3) type 0
    obs = env.step(torch.tensor([[2]])).obs.view(3, 7, 7)   # from the start (2, 2) left to (2, 1)
    inside, type0, type1 = obs
    # the window's centre (3, 3) is the agent; arena cell (r, c) sits at (r - 2 + 3, c - 1 + 3)
    assert inside.sum() == 16 and inside[1:5, 2:6].all() and inside[0].sum() == 0 and inside[:, 1].sum() == 0
    assert type1.nonzero().tolist() == [[1, 3]] and type0.nonzero().tolist() == [[4, 5]]
    old = metadqn.make_family("preference", size=4, items=2, item_types=2, egocentric=False, reference_layouts=1)
    assert old.observation_space.shape == (2 + 2 * 16,)
    pixels = metadqn.make_family("preference", size=4, items=2, item_types=2, pixels=True, reference_layouts=1)
    assert pixels.observation_space.shape == (3, 7, 7)


def test_preference_frozen_limit_plans_with_what_the_support_revealed():
    """A collected item reveals its type's weight; the rest stay at the prior mean (0 on
    [-1, 1]). All revealed: the oracle; nothing revealed: the plan for ŵ = 0."""
    family = metadqn.make_family("preference", size=4, items=3, item_types=2, horizon=10, reference_layouts=5)
    task = family.task(weights=[0.8, -0.6])
    cells, types = family.reference_layout_sample()
    env = family.make_batched([task], 1, seed=0)
    env.reset()
    env.item_cell[:], env.item_type[:] = torch.tensor([9, 12, 3]), torch.tensor([1, 0, 1])
    seen = [env._observe()]
    for action in (1, 2, 0):          # from (2, 2) down, left, up: onto cell 9 = (2, 1), a type-1 item
        step = env.step(torch.tensor([[action]]))
        seen.append(step.obs)
    nothing = {"obs": seen[0].numpy()[0], "next_obs": seen[1].numpy()[0]}
    assert not family.revealed_types(nothing).any()
    data = {"obs": torch.cat(seen[:-1]).numpy()[:, 0], "next_obs": torch.cat(seen[1:]).numpy()[:, 0]}
    assert family.revealed_types(data).tolist() == [False, True] and float(step.reward) == pytest.approx(-0.62)
    zero = float(family.planned_returns([0.0, 0.0], task["weights"], cells, types).mean())
    assert family.frozen_limit_return(task, nothing) == pytest.approx(zero)
    assert family.frozen_limit_return(task, data) == pytest.approx(
        float(family.planned_returns([0.0, -0.6], task["weights"], cells, types).mean()))
    env.item_cell[:], env.item_type[:], env.alive[:] = torch.tensor([9, 8, 3]), torch.tensor([1, 0, 1]), True
    before = env._observe()
    after = env.step(torch.tensor([[2]])).obs                      # (2, 1) left to (2, 0) = 8: type 0
    both = {"obs": np.concatenate((data["obs"], before.numpy()[:, 0])),
            "next_obs": np.concatenate((data["next_obs"], after.numpy()[:, 0]))}
    assert family.revealed_types(both).all()
    assert family.frozen_limit_return(task, both) == pytest.approx(family.oracle_return(task))
    assert family.random_return(task) < family.frozen_limit_return(task, data) < family.oracle_return(task)


def test_preference_limit_reads_every_view_alike():
    """Random support data do not depend on the observations, so each view's limit is the same."""
    from metadqn.limits import limit_returns
    limits = []
    for view in ({}, {"pixels": True}, {"egocentric": False}, {"egocentric": False, "pixels": True}):
        family = metadqn.make_family("preference", size=4, items=3, item_types=2, horizon=10, reference_layouts=3,
                                     **view)
        limits.append(limit_returns(family, family.split(4, 3)[1], kind="frozen", runs_per_task=4, episodes=1))
    assert len(np.unique(limits[0].round(9))) > 2   # support episodes that revealed different weights
    for other in limits[1:]:
        np.testing.assert_allclose(other, limits[0])
