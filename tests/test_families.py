"""The families of the 'more task families' issue: driving, gridnav-pixels, the Gymnasium
adapter (acrobot-physics, lunarlander-physics, highway, a user's own env) — Gymnasium
compliance, batched vs single equivalence, that the parameters really change the dynamics,
and that MAML-DQN runs on each through the same commands."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import metadqn
from metadqn.cli import main
import metadqn.families
from metadqn.families import MissingExtra, Task, TaskError, from_gymnasium, make_family
from metadqn.tasks.driving import COLLISION_REWARD, MAX_CARS

ROOT = Path(__file__).resolve().parents[1]


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


needs_box2d = pytest.mark.skipif(not _has("Box2D"), reason="Box2D not installed (pip install 'metadqn[box2d]')")
needs_highway = pytest.mark.skipif(not _has("highway_env"),
                                   reason="highway-env not installed (pip install 'metadqn[highway]')")

GYM_FAMILIES = [
    pytest.param("acrobot-physics", {"max_episode_steps": 60}, id="acrobot"),
    pytest.param("lunarlander-physics", {"max_episode_steps": 60}, id="lunarlander", marks=needs_box2d),
    pytest.param("highway", {"max_episode_steps": 8}, id="highway", marks=needs_highway),
]


# -- driving -----------------------------------------------------------------------------------
def _drive(family, task, policy, steps, seed=0, speed=None):
    env = family.make_batched([task], 1, seed=seed, dtype=torch.float64)
    env.reset()
    if speed is not None:
        env.ego_v[:] = speed
    rewards, obs = [], []
    for _ in range(steps):
        out = env.step(torch.tensor([[policy]]))
        rewards.append(float(out.reward[0, 0]))
        obs.append(out.next_obs[0, 0].clone())
        if bool(out.done[0, 0]):
            break
    return rewards, obs, env


def test_driving_speed_limit_is_hidden_but_changes_which_speed_pays():
    family = make_family("driving")
    fast_road = family.task(density=0.0, speed_limit=35.0, safety=0.0)
    slow_road = family.task(density=0.0, speed_limit=15.0, safety=0.0)
    r_fast, obs_fast, _ = _drive(family, fast_road, 1, 20, speed=30.0)   # cruise at 30 m/s, empty road
    r_slow, obs_slow, _ = _drive(family, slow_road, 1, 20, speed=30.0)
    assert len(obs_fast) == 20 and all(torch.equal(a, b) for a, b in zip(obs_fast, obs_slow))  # same view ...
    assert sum(r_fast) > 15 and sum(r_slow) < -30                      # ... opposite verdicts
    # and on the slow road, slowing down beats cruising
    r_brake, _, _ = _drive(family, slow_road, 4, 20, speed=30.0)
    assert sum(r_brake) > 0


def test_driving_friction_limits_braking_and_acceleration():
    family = make_family("driving")
    speeds = {}
    for mu in (0.2, 1.0):
        _, _, env = _drive(family, family.task(density=0.0, friction=mu), 4, 1)
        speeds[mu] = float(env.ego_v[0, 0])
    assert speeds[0.2] > speeds[1.0] + 5  # an icy road brakes far less in one step


def test_driving_collision_ends_the_episode_with_the_collision_reward():
    family = make_family("driving")
    env = family.make_batched([family.task(lanes=2, density=1.0)], 1, seed=0, dtype=torch.float64)
    env.reset()
    env.ego_lane[:] = 0
    env.ego_v[:] = 30.0
    env.car_lane[:] = 1
    env.car_s[:] = 80.0
    env.car_lane[0, 0, 0], env.car_s[0, 0, 0], env.car_v[0, 0, 0] = 0, 12.0, 10.0  # slow car just ahead
    out = env.step(torch.tensor([[1]]))  # idle: drive into it
    assert bool(out.terminated[0, 0]) and float(out.reward[0, 0]) == COLLISION_REWARD


def test_driving_traffic_density_sets_the_number_of_cars():
    family = make_family("driving")
    env = family.make_batched([family.task(lanes=4, density=0.0), family.task(lanes=4, density=1.0),
                               family.task(lanes=2, density=0.5)], 2, seed=0)
    assert env.car_active.sum(1).tolist() == [0, MAX_CARS, 3]


def test_driving_render_shows_ego_and_traffic():
    family = make_family("driving")
    env = family.make_env(family.task(lanes=3, density=1.0), render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.count("A") == 1 and text.count("c") >= 1 and len(text.splitlines()) == 4


# -- gridnav-pixels ----------------------------------------------------------------------------
def test_gridnav_pixels_image_shows_walls_agent_and_a_goal_cue_early_only():
    family = make_family("gridnav-pixels", obstacles=6, cue_steps=1)
    task = family.sample_tasks(1, seed=0)[0]
    env = family.make_env(task)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 8, 8)
    assert obs[0].sum() == 6 and np.array_equal(obs[0].astype(bool), family.walls(task))
    assert obs[1].sum() == 1 and obs[1][4, 4] == 1  # the agent starts at the centre
    goal = task["goal"]
    assert obs[2].sum() == 1 and obs[2][goal[0], goal[1]] == 1
    obs, *_ = env.step(0)
    assert obs[2].sum() == 0  # the cue is gone after cue_steps


def test_gridnav_pixels_picks_the_cnn_and_meta_trains(tmp_path):
    family = make_family("gridnav-pixels", size=5, obstacles=3)
    learner = metadqn.MAMLDQN(family, algo="maml", iterations=2, envs_per_task=2, n_train_tasks=3, eval_every=0,
                              checkpoint_every=0, net={"channels": [4], "hidden": [16]})
    assert learner.net.kind == "cnn" and "convs.0.weight" in learner.params
    before = {k: v.detach().clone() for k, v in learner.params.items()}
    train, test = family.split(3, 2, seed=0)
    learner.meta_train(train)
    assert not torch.equal(before["convs.0.weight"], learner.params["convs.0.weight"])
    adapted = learner.adapt(test[0], episodes=1, steps=2)
    assert adapted["convs.0.weight"].shape == learner.params["convs.0.weight"].shape


# -- Gymnasium adapter -------------------------------------------------------------------------
@pytest.mark.parametrize("name,options", GYM_FAMILIES)
# the env a user gets, wrappers (TimeLimit) and all, is the one checked; gymnasium warns that it is wrapped
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_gym_families_pass_check_env(name, options):
    family = make_family(name, **options)
    for task in [family.default_task(), *family.sample_tasks(1, seed=1)]:
        env = family.make_env(task)
        check_env(env, skip_render_check=True)
        env.close()


@pytest.mark.parametrize("name,options", GYM_FAMILIES)
def test_gym_batched_equals_single_env(name, options):
    family = make_family(name, **options)
    tasks = family.sample_tasks(2, seed=3)
    batched = family.make_batched(tasks, 2, seed=7)
    batched.reset()
    seeds = batched.episode_seeds.copy()
    singles = [[family.make_env(t) for _ in range(2)] for t in tasks]
    first = [[env.reset(seed=int(seeds[i, j]))[0] for j, env in enumerate(row)] for i, row in enumerate(singles)]
    rng = np.random.default_rng(0)
    live = np.ones(batched.batch_shape, dtype=bool)
    for _ in range(options["max_episode_steps"]):
        actions = torch.as_tensor(rng.integers(0, batched.n_actions, size=batched.batch_shape))
        out = batched.step(actions)
        for i, row in enumerate(singles):
            for j, env in enumerate(row):
                if not live[i, j]:
                    continue
                obs, reward, term, trunc, _ = env.step(int(actions[i, j]))
                np.testing.assert_allclose(out.next_obs[i, j].numpy(), obs, rtol=1e-5, atol=1e-5)
                assert math.isclose(float(out.reward[i, j]), reward, rel_tol=1e-5, abs_tol=1e-5)
                assert (bool(out.terminated[i, j]), bool(out.truncated[i, j])) == (term, trunc)
                live[i, j] = not (term or trunc)
    assert first[0][0].shape == family.observation_space.shape
    batched.close()


def _acrobot_rollout(task, steps=40):
    env = make_family("acrobot-physics").make_env(task)
    env.reset(seed=0)
    return np.stack([env.step(2)[0] for _ in range(steps)])


def test_acrobot_setter_changes_the_physics_and_moves_the_centres_of_mass():
    family = make_family("acrobot-physics")
    short = family.task(length_1=0.5, length_2=0.5)
    env = family.make_env(short)
    assert env.unwrapped.LINK_COM_POS_1 == 0.25 and env.unwrapped.LINK_COM_POS_2 == 0.25
    assert not np.allclose(_acrobot_rollout(short), _acrobot_rollout(family.default_task()), atol=1e-3)
    heavy = family.task(mass_2=1.5)
    assert not np.allclose(_acrobot_rollout(heavy), _acrobot_rollout(family.default_task()), atol=1e-3)


@needs_box2d
def test_lunarlander_gravity_reaches_the_box2d_world():
    family = make_family("lunarlander-physics")
    fall = {}
    for g in (-11.0, -3.0):
        env = family.make_env(family.task(gravity=g))
        assert tuple(env.unwrapped.world.gravity) == pytest.approx((0.0, g))
        obs, _ = env.reset(seed=0)
        for _ in range(20):
            obs, *_ = env.step(0)  # do nothing: fall
        fall[g] = obs[3]  # vertical velocity
    assert fall[-11.0] < fall[-3.0] - 0.3


@needs_highway
def test_highway_setter_sets_the_lane_count():
    family = make_family("highway")
    env = family.make_env(family.task(lanes=2))
    env.reset(seed=0)
    assert len(env.unwrapped.road.network.lanes_list()) == 2
    env.close()


def test_missing_extra_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "highway_env", None)
    with pytest.raises(MissingExtra, match=r"metadqn\[highway\]"):
        make_family("highway")
    monkeypatch.setitem(sys.modules, "Box2D", None)
    with pytest.raises(MissingExtra, match=r"metadqn\[box2d\]"):
        make_family("lunarlander-physics")


def test_families_json_lists_every_family_even_without_extras(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "highway_env", None)
    assert main(["families", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert {"driving", "gridnav-pixels", "acrobot-physics", "lunarlander-physics", "highway"} <= set(listed)
    assert listed["highway"]["available"] is False and "pip install" in listed["highway"]["reason"]
    assert listed["driving"]["observation_space"]["shape"] == [25]


@pytest.mark.parametrize("call,match", [
    (lambda: from_gymnasium("Pendulum-v1", {"g": (5, 15)}), "Discrete action space"),
    (lambda: from_gymnasium("CartPole-v1", {"gravity": (15, 5)}), "low <= high"),
    (lambda: from_gymnasium("CartPole-v1", {"gravity": 9.8}), r"needs \(low, high\)"),
    (lambda: from_gymnasium("CartPole-v1", {"gravty": (5, 15)}), "no attribute 'gravty'"),
    (lambda: from_gymnasium("NoSuchEnv-v0", {"x": (0, 1)}), "cannot make 'NoSuchEnv-v0'"),
    (lambda: from_gymnasium("CartPole-v1", {"gravity": (5, 15)}, setter="kwargs"), "cannot make 'CartPole-v1'"),
    (lambda: from_gymnasium("CartPole-v1", {"gravity": (5, 15)}, setter="attributes"), "setter must be"),
    (lambda: from_gymnasium("CartPole-v1", {"gravity": (5, 15)}).task(gravity=50), "out of range"),
])
def test_gym_adapter_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(TaskError, match=match):
        call()


def test_gym_adapter_default_setter_sets_attributes():
    family = from_gymnasium("CartPole-v1", {"force_mag": (5.0, 15.0)})
    env = family.make_env(family.task(force_mag=6.0))
    assert env.unwrapped.force_mag == 6.0
    assert family.name == "CartPole-v1-params" and family.max_episode_steps == 500


def test_custom_family_example_runs():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_family.py"), "--iterations", "3"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "before adaptation" in line]
    assert len(lines) == 3 and all("after 3 steps" in line for line in lines)


# -- the same commands on every family ------------------------------------------------------------
@pytest.mark.parametrize("family,options", [
    ("driving", {}),
    ("gridnav-pixels", {"size": 5, "obstacles": 3}),
    ("acrobot-physics", {"max_episode_steps": 30}),
    pytest.param("lunarlander-physics", {"max_episode_steps": 30}, marks=needs_box2d),
    pytest.param("highway", {"max_episode_steps": 3}, marks=needs_highway),
])
def test_train_and_adapt_commands_run_on_the_new_families(tmp_path, family, options, capsys):
    out = tmp_path / "run"
    code = main(["train", "--family", family, "--family-options", json.dumps(options), "--iterations", "2",
                 "--out", str(out), "--set", "n_train_tasks=3", "--set", "n_test_tasks=2", "--set", "envs_per_task=2",
                 "--set", "eval_every=0", "--set", "net.hidden=[16]", "--set", "net.channels=[4]"])
    assert code == 0 and (out / "config.json").exists()
    capsys.readouterr()
    assert main(["adapt", str(out), "--steps", "1", "--episodes", "1"]) == 0
    assert "before" in capsys.readouterr().out


def test_the_encoder_and_maml_run_on_a_users_gymnasium_family(tmp_path, capsys):
    """A from_gymnasium family (hidden physics) with every kind of adapter, no code changes."""
    for algo in ("encoder", "maml"):
        out = tmp_path / algo
        assert main(["train", "--family", "acrobot-physics", "--family-options", '{"max_episode_steps": 20}',
                     "--algo", algo, "--iterations", "2", "--out", str(out), "--set", "n_train_tasks=3",
                     "--set", "n_test_tasks=2", "--set", "envs_per_task=1", "--set", "eval_every=0",
                     "--set", "net.hidden=[16]"]) == 0
        capsys.readouterr()
        assert main(["adapt", str(out), "--steps", "1", "--episodes", "1"]) == 0
        assert "after 1 step(s)" in capsys.readouterr().out


# -- partial observability: observation windows and the recurrent Q-network -------------------------
def test_gridnav_memory_window_holds_the_episode_so_far():
    family = make_family("gridnav-memory", size=5)       # horizon 10, window 10, goal cue in step 0 only
    check_env(family.make_env(family.sample_tasks(1, seed=0)[0]), skip_render_check=True)
    tasks = family.sample_tasks(3, seed=1)
    env = family.make_batched(tasks, 2, seed=0)
    base = family.base.make_batched([Task(family.base.name, t.params) for t in tasks], 2, seed=0)  # deterministic
    seen = [[[o] for o in row] for row in base.reset()]
    window = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(25):
        actions = torch.as_tensor(rng.integers(0, 4, size=env.batch_shape))
        out, ref = env.step(actions), base.step(actions)
        for i in range(3):
            for j in range(2):
                seen[i][j].append(ref.next_obs[i, j])
                expect = torch.zeros(family.window, 6)
                recent = seen[i][j][-family.window:]
                for r, o in enumerate(recent, start=family.window - len(recent)):
                    expect[r] = torch.cat((o, torch.ones(1)))
                assert torch.equal(out.next_obs[i, j], expect)
                if ref.done[i, j]:
                    seen[i][j] = [ref.obs[i, j]]
        window = out.obs
    assert window[..., -1].sum() > 0
    cue = out.next_obs[..., 2:5]
    assert (cue.abs().sum(-1) > 0).sum(-1).le(1).all()  # the goal shows in at most one step of a window


def test_gridnav_history_is_gridnav_with_the_episode_as_memory_and_its_encoder_reads_the_newest_step():
    from metadqn.learner import MAMLDQN
    family, plain = make_family("gridnav-history", size=5), make_family("gridnav", size=5)
    assert family.window == family.max_episode_steps == 10 and family.observation_space.shape == (10, 3)
    assert family.base.options == plain.options and family.options == {**plain.options, "window": 10}
    task = family.sample_tasks(1, seed=0)[0]
    assert family.oracle_return(task) == plain.oracle_return(plain.task(**task.params))
    env = family.make_batched([task], 1, seed=0)
    obs = env.reset()
    assert torch.count_nonzero(obs[0, 0, :-1, -1]) == 0 and obs[0, 0, -1, -1] == 1  # only the start so far
    learner = MAMLDQN(family, algo="encoder", iterations=1)
    assert learner.config.context_obs == "newest" and learner.config.encoder_pooling == "bayes"
    assert MAMLDQN(family, algo="encoder", context_obs="all", iterations=1).config.context_obs == "all"
    assert MAMLDQN(plain, algo="encoder", iterations=1).config.context_obs == "all"
    context = MAMLDQN(family, algo="context", iterations=1).config
    assert context.context_obs == "newest" and context.context_starts == 8
    assert (context.support_episodes_max, context.eps_query, context.query_replay) == (3, 0.3, 2000)


def test_gru_q_network_matches_torch_gru_cell_and_skips_padding():
    from metadqn.nets import NetSpec, build_qnet
    net = build_qnet(NetSpec(kind="gru", hidden=(8, 6)), (5, 3), 4)
    x = torch.randn(7, 5, 3)
    x[:3, :2] = 0.0  # two padding steps at the start of three windows
    h = torch.zeros(7, 8)
    for t in range(5):
        step = net.gru(torch.relu(net.enc(x[:, t])), h)
        h = torch.where((x[:, t] != 0).any(-1, keepdim=True), step, h)
    want = net.fcs[1](torch.relu(net.fcs[0](h)))
    torch.testing.assert_close(net(x), want)
    with pytest.raises(ValueError, match="with_history"):
        build_qnet(NetSpec(kind="gru"), (6,), 4)
    with pytest.raises(TaskError, match="vector observations"):
        metadqn.families.with_history(make_family("gridnav-pixels"), 4)


def test_recurrent_maml_runs_through_the_train_and_adapt_commands(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--family", "gridnav-memory", "--family-options", '{"size": 4}', "--iterations", "2",
                 "--out", str(out), "--set", "n_train_tasks=3", "--set", "n_test_tasks=2", "--set", "envs_per_task=2",
                 "--set", "eval_every=0", "--set", "net.kind=gru", "--set", "net.hidden=[8]"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["net"]["kind"] == "gru"
    capsys.readouterr()
    assert main(["adapt", str(out), "--steps", "1"]) == 0
    assert "before" in capsys.readouterr().out


@needs_highway
def test_family_options_rebuild_the_same_family():
    family = make_family("highway", env_id="merge-v0", max_episode_steps=5)
    again = make_family(family.name, **family.options)
    assert again.env_id == "merge-v0" and again.max_episode_steps == 5
    acro = make_family("acrobot-physics", max_episode_steps=50)
    assert make_family("acrobot-physics", **acro.options).max_episode_steps == 50


def test_the_registered_name_is_the_name_runs_save(tmp_path):
    from metadqn.families import register_family
    register_family("my-acrobot", lambda **o: metadqn.families.acrobot_physics(**o), overwrite=True)
    family = make_family("my-acrobot", max_episode_steps=10)
    assert family.name == "my-acrobot"  # not the factory's own "acrobot-physics"
    learner = metadqn.MAMLDQN(family, algo="maml", iterations=1, envs_per_task=1, eval_every=0,
                              net={"hidden": [8]})
    learner.meta_train(family.sample_tasks(2, seed=0), progress=False)
    learner.save(tmp_path / "c.safetensors")
    assert metadqn.MAMLDQN.load(tmp_path / "c.safetensors").family.name == "my-acrobot"
    with pytest.raises(TaskError, match="unexpected keyword"):
        make_family("my-acrobot", colour="red")


def test_preference_trains_and_adapts_by_the_cli_with_defaults(tmp_path, capsys):
    out = tmp_path / "pref"
    assert main(["train", "--family", "preference", "--family-options", '{"reference_layouts": 4}', "--out", str(out),
                 "--quiet", "--iterations", "2", "--set", "n_train_tasks=3", "--set", "n_test_tasks=2",
                 "--set", "envs_per_task=1"]) == 0
    capsys.readouterr()
    assert main(["adapt", str(out), "--task", '{"weights": [1.0, -1.0, 0.5]}', "--steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "after 3 step(s)" in text and "oracle return" in text


def test_a_preference_run_saved_before_the_egocentric_view_loads_with_the_view_it_was_trained_on(tmp_path):
    from metadqn.checkpoint import load_checkpoint, save_checkpoint
    from metadqn.dqn_agent import DQN, DQNConfig
    family = make_family("preference", size=4, items=2, item_types=2, egocentric=False, reference_layouts=2)
    meta_run = metadqn.MAMLDQN(family, iterations=1, n_train_tasks=2, n_test_tasks=1, envs_per_task=1, eval_every=0,
                               outer_steps=1).meta_train(out_dir=tmp_path / "meta", progress=False)
    dqn = DQN(family, family.default_task(), DQNConfig(total_steps=64, learning_starts=32, eval_every=0))
    dqn.learn(progress=False)
    dqn.save(tmp_path / "dqn.safetensors")
    for path, run in ((tmp_path / "meta" / "checkpoint.safetensors", meta_run), (tmp_path / "dqn.safetensors", dqn)):
        tensors, meta = load_checkpoint(path)
        del meta["family_options"]["egocentric"]          # as runs saved it before the option existed
        save_checkpoint(path, tensors, meta)
        loaded = (metadqn.MAMLDQN if run is meta_run else DQN).load(path)
        assert loaded.family.egocentric is False and loaded.family.observation_space.shape == (2 + 2 * 16,)
        obs = torch.rand(3, 2 + 2 * 16)
        if run is dqn:
            assert (loaded.predict(obs) == run.predict(obs)).all()
    assert make_family("preference").egocentric is True   # new runs see the arena from the agent


def test_with_time_is_the_same_env_with_t_over_horizon_observed():
    from metadqn.families import TimeFamily, with_time, without_time
    base = make_family("gridnav", size=5)
    family = with_time(base)
    assert isinstance(family, TimeFamily) and with_time(family) is family and without_time(family) is base
    assert (family.name, family.options) == (base.name, base.options)  # saved runs name the family itself
    assert family.observation_space.shape == (3,) and family.split(6, 3, seed=2) == base.split(6, 3, seed=2)
    tasks = base.split(3, 0, seed=1)[0]
    env, plain = family.make_batched(tasks, 2, seed=7), base.make_batched(tasks, 2, seed=7)
    obs, want = env.reset(), plain.reset()
    torch.testing.assert_close(obs[..., :-1], want)
    assert torch.all(obs[..., -1] == 0)
    gen, horizon, ends = torch.Generator().manual_seed(0), base.max_episode_steps, 0
    steps = torch.zeros(3, 2)
    for _ in range(3 * horizon):
        actions = torch.randint(0, 4, (3, 2), generator=gen)
        out, ref = env.step(actions), plain.step(actions)
        for a, b in ((out.obs, ref.obs), (out.next_obs, ref.next_obs)):
            torch.testing.assert_close(a[..., :-1], b)  # the same episodes, step for step
        assert torch.equal(out.reward, ref.reward) and torch.equal(out.terminated, ref.terminated)
        steps += 1
        torch.testing.assert_close(out.next_obs[..., -1], steps / horizon)  # t / H of the step's successor
        done = out.terminated | out.truncated
        ends += int(done.sum())
        steps = torch.where(done, torch.zeros_like(steps), steps)
        torch.testing.assert_close(out.obs[..., -1], steps / horizon)  # 0 again after a reset
    assert ends >= 6
    with pytest.raises(TaskError, match="vector observations"):
        with_time(make_family("gridnav-pixels"))


def test_time_feature_gives_the_learner_the_timed_view_and_its_runs_reload_with_it(tmp_path):
    from metadqn.families import TimeFamily, with_time
    from metadqn.learner import MAMLDQN
    family = make_family("gridnav", size=5)
    assert MAMLDQN(family, algo="context").config.time_feature  # gridnav's context recommendation
    assert not MAMLDQN(family, algo="encoder").config.time_feature and not MAMLDQN(family, algo="maml").config.time_feature
    learner = MAMLDQN(family, algo="context", iterations=2, envs_per_task=1, eval_every=0, outer_steps=1,
                      n_train_tasks=4, n_test_tasks=2, query_replay=64)
    assert isinstance(learner.family, TimeFamily) and learner.family.base is family
    learner.meta_train(out_dir=tmp_path, progress=False)
    again = MAMLDQN.load(tmp_path)
    assert isinstance(again.family, TimeFamily) and again.family.options == family.options
    obs = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.75]])
    state = {"context": learner.params["context"].detach()}
    torch.testing.assert_close(again.adapter().q_values(state, obs), learner.adapter().q_values(state, obs))
    with pytest.raises(ValueError, match="time_feature=True"):
        MAMLDQN(with_time(family), algo="context")
    from metadqn.adaptation import adaptation_curve  # the family it was made from: a clear error, not a shape one
    with pytest.raises(ValueError, match=r"shape \[3\].*gives \[2\].*pass learner.family"):
        adaptation_curve(learner.adapter(), family, family.split(4, 2)[1], runs_per_task=1, episodes=1, steps=(0,))
