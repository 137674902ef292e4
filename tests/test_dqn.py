"""DQN core: replay n-step returns, TD targets, learning on small tasks, checkpoints."""

import numpy as np
import pytest
import torch

import metadqn
from metadqn.dqn_agent import DQN
from metadqn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from metadqn.rollout import epsilon_greedy
from metadqn.td import td_loss
from metadqn.nets import NetSpec, build_qnet, init_params
from metadqn.replay import Batch, Query, TaskReplay, query_parts


def _fill(replay, rewards, dones, terms):
    for t, (r, d, term) in enumerate(zip(rewards, dones, terms)):
        obs = torch.full((1, 1, 1), float(t))
        replay.add(obs, torch.zeros(1, 1, dtype=torch.long), torch.tensor([[r]]), obs + 1,
                   torch.tensor([[term]]), torch.tensor([[d]]))


def test_replay_n_step_returns_stop_at_episode_end_and_newest_data():
    replay = TaskReplay(1, 1, 16, (1,))
    #          t: 0    1    2     3    4    5
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    dones = [False, False, True, False, False, False]   # episode ends (terminated) at t=2
    _fill(replay, rewards, dones, dones)
    g = 0.5
    batch = replay.sample(512, n_step=3, gamma=g, generator=torch.Generator().manual_seed(0))
    start = batch.obs[0, :, 0].long()
    for i, t in enumerate(start.tolist()):
        want = {0: (1 + g * 2 + g * g * 3, 0.0, 3),   # window hits the terminal step: no bootstrap
                1: (2 + g * 3, 0.0, 3),
                2: (3.0, 0.0, 3),
                3: (4 + g * 5 + g * g * 6, g ** 3, 6),
                4: (5 + g * 6, g ** 2, 6),            # cut at the newest data: bootstrap from t=5's next
                5: (6.0, g, 6)}[t]
        assert batch.returns[0, i].item() == pytest.approx(want[0])
        assert batch.discount[0, i].item() == pytest.approx(want[1])
        assert batch.next_obs[0, i, 0].item() == want[2]
    assert set(start.tolist()) == set(range(6))


def test_outer_loss_data_with_n_step_returns_carries_the_same_transitions_one_step_long():
    """sample_query: with n = 1 exactly sample()'s batch from the same draws; with n > 1 a Query
    whose td part has the n-step returns and whose step part the same transitions' own reward,
    next observation and discount (a model head's targets)."""
    replay = TaskReplay(1, 1, 16, (1,))
    _fill(replay, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [False, False, True, False, False, False],
          [False, False, True, False, False, False])
    plain = replay.sample(64, 1, 0.5, generator=torch.Generator().manual_seed(1))
    same = replay.sample_query(64, 1, 0.5, generator=torch.Generator().manual_seed(1))
    assert isinstance(same, Batch) and all(torch.equal(a, b) for a, b in zip(plain, same))
    q = replay.sample_query(64, 3, 0.5, generator=torch.Generator().manual_seed(1))
    assert isinstance(q, Query)
    assert torch.equal(q.td.obs, plain.obs) and torch.equal(q.step.obs, plain.obs)  # the same draws
    assert all(torch.equal(a, b) for a, b in zip(q.step, plain))                   # one step long
    assert all(torch.equal(a, b) for a, b in zip(q.td, replay.sample(64, 3, 0.5, generator=torch.Generator().manual_seed(1))))
    t = q.td.obs[0, :, 0].long()
    assert torch.equal(q.step.returns[0], t.float() + 1)                           # reward of step t is t + 1
    assert (q.td.returns[0][t == 3] == 4 + 0.5 * 5 + 0.25 * 6).all() and (t == 3).any()
    assert query_parts(q) == (q.td, q.step) and query_parts(plain) == (plain, plain)


def test_replay_samples_every_task_in_one_call():
    replay = TaskReplay(3, 2, 10, (2,))
    for t in range(7):
        obs = torch.arange(3).float().view(3, 1, 1).expand(3, 2, 2) * 100 + t
        replay.add(obs, torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 2), obs, torch.zeros(3, 2, dtype=torch.bool),
                   torch.zeros(3, 2, dtype=torch.bool))
    batch = replay.sample(50, generator=torch.Generator().manual_seed(0))
    assert batch.obs.shape == (3, 50, 2)
    for task in range(3):  # rows of task i come from task i; only the last 5 steps survive the ring
        assert ((batch.obs[task, :, 0] // 100) == task).all()
        assert ((batch.obs[task, :, 0] % 100) >= 2).all()
    assert len(replay) == 10


def test_td_loss_matches_hand_computed_double_dqn_target():
    net = build_qnet(NetSpec(hidden=(8,)), (2,), 3)
    params = init_params(net, 0)
    target = init_params(net, 1)
    gen = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(6, 2, generator=gen), torch.randint(0, 3, (6,), generator=gen),
                  torch.randn(6, generator=gen), torch.randn(6, 2, generator=gen), torch.tensor([0.99, 0, 0.5, 1, 0.9, 0.1]))
    with torch.no_grad():
        q = net.functional(params, batch.obs)[torch.arange(6), batch.action]
        a_star = net.functional(params, batch.next_obs).argmax(-1)
        y = batch.returns + batch.discount * net.functional(target, batch.next_obs)[torch.arange(6), a_star]
        y_plain = batch.returns + batch.discount * net.functional(target, batch.next_obs).max(-1).values
    assert td_loss(net, params, batch, target=target, double=True, loss="mse").item() == pytest.approx(((q - y) ** 2).mean().item(), rel=1e-6)
    assert td_loss(net, params, batch, target=target, double=False, loss="mse").item() == pytest.approx(((q - y_plain) ** 2).mean().item(), rel=1e-6)


def test_epsilon_greedy_explores_at_the_given_rate():
    q = torch.zeros(1000, 4)
    q[:, 2] = 1.0
    actions = epsilon_greedy(q, 0.4, torch.Generator().manual_seed(0))
    non_greedy = (actions != 2).float().mean().item()
    assert non_greedy == pytest.approx(0.4 * 3 / 4, abs=0.05)
    assert (epsilon_greedy(q, 0.0) == 2).all()


def test_cnn_qnet_handles_image_batches_with_leading_axes():
    net = build_qnet(NetSpec(kind="cnn", channels=(4,), hidden=(16,)), (3, 5, 5), 4)
    out = net(torch.randn(2, 7, 3, 5, 5))
    assert out.shape == (2, 7, 4)
    with pytest.raises(ValueError, match="image observations"):
        build_qnet(NetSpec(kind="cnn"), (4,), 2)


def test_film_scales_and_shifts_each_hidden_layer_by_the_context():
    spec = NetSpec(hidden=(6, 5), activation="tanh", context=3)
    plain, film = build_qnet(spec, (4,), 2), build_qnet(NetSpec(**{**spec.__dict__, "film": True}), (4,), 2)
    p, q = init_params(plain, 0), init_params(film, 0)
    assert set(q) - set(p) == {"films.0.weight", "films.0.bias", "films.1.weight", "films.1.bias"}
    assert all(torch.equal(q[k], v) for k, v in p.items())   # the same draws for the shared layers
    obs, c = torch.randn(7, 4), torch.randn(3)
    x = torch.cat((obs, c.expand(7, 3)), 1)
    for i in range(2):
        x = torch.tanh(x @ q[f"fcs.{i}.weight"].T + q[f"fcs.{i}.bias"])
        film_out = q[f"films.{i}.weight"] @ c + q[f"films.{i}.bias"]
        x = x * (1 + film_out[: x.shape[1]]) + film_out[x.shape[1]:]
    want = x @ q["fcs.2.weight"].T + q["fcs.2.bias"]
    torch.testing.assert_close(film.functional({**q, "context": c}, obs), want)
    assert not torch.allclose(want, plain.functional({**p, "context": c}, obs))
    with pytest.raises(ValueError, match="film must be true or false"):
        NetSpec(context=3, film="yes")


def test_dqn_learns_gridnav_to_near_optimal():
    family = metadqn.make_family("gridnav", size=5)
    task = family.task(goal=[0, 4])
    agent = DQN(family, task, total_steps=6000, n_envs=8, learning_starts=500, eval_every=2000, seed=0)
    agent.learn(progress=False)
    ret = agent.evaluate(episodes=5).mean().item()
    # random play earns about -5.4 here; the optimum is -0.4 (three steps at distance 2, 1, 0)
    assert family.random_return(task) < -5
    assert ret >= family.oracle_return(task) - 0.5


def test_dqn_learns_cartpole_in_a_short_run():
    agent = DQN("cartpole-physics", total_steps=15_000, eval_every=2500, seed=0)
    agent.learn(progress=False)
    ret = agent.evaluate(episodes=10, seed=123).mean().item()
    assert ret >= 150, ret  # random play lasts about 22 steps


def test_dqn_callback_sees_the_run_and_can_stop_it():
    seen = []

    def stop_at_3000(agent, steps):
        seen.append((steps, len(agent.history)))
        return steps < 3000

    agent = DQN("cartpole-physics", total_steps=10_000, eval_every=1000, seed=0)
    agent.learn(progress=False, callback=stop_at_3000, callback_every=1000)
    assert [s for s, _ in seen] == [1000, 2000, 3000]          # every 1000 env steps (8 envs: 125 iterations)
    assert [n for _, n in seen] == [1, 2, 3]                    # after that step's evaluation
    assert agent.history[-1]["env_steps"] == 3000               # and no further
    with pytest.raises(ValueError, match="callback_every"):
        agent.learn(progress=False, callback=stop_at_3000, callback_every=0)


def test_dqn_save_load_roundtrip(tmp_path):
    agent = DQN("gridnav", total_steps=500, eval_every=0, seed=0)
    agent.learn(progress=False)
    agent.save(tmp_path / "a.safetensors")
    loaded = DQN.load(tmp_path / "a.safetensors")
    obs = np.random.default_rng(0).random((20, 2)).astype(np.float32)
    assert (loaded.predict(obs) == agent.predict(obs)).all()


def test_checkpoint_errors_are_clear_and_never_unpickle(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(corrupt)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a metadqn checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    save_checkpoint(tmp_path / "dqn.safetensors", {"w": torch.zeros(2)}, {"kind": "dqn"})
    with pytest.raises(CheckpointError, match="expected 'maml-dqn'"):
        load_checkpoint(tmp_path / "dqn.safetensors", kind="maml-dqn")


def test_checkpoint_save_is_atomic_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.ones(2)}, {"kind": "dqn"})
    import metadqn.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"w": torch.zeros(2)}, {"kind": "dqn"})
    tensors, _ = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_independent_dqn_learns_each_task_where_a_shared_network_cannot():
    """Two bandits with opposite best arms and identical observations: one network per task
    (trained side by side, vmapped) finds each task's arm; a shared network cannot."""
    family = metadqn.make_family("bandit", arms=2, horizon=10)
    tasks = [family.task(means=[0.9, 0.1]), family.task(means=[0.1, 0.9])]
    kw = dict(total_steps=3000, n_envs=8, learning_starts=200, eval_every=1000, net={"hidden": [16]}, seed=0)
    independent = DQN(family, tasks, independent=True, **kw).learn(progress=False)
    assert independent.params["fcs.0.weight"].shape[0] == 2  # a network per task
    per_task = independent.evaluate(episodes=20, seed=5).mean(1)
    assert (per_task > 8.0).all(), per_task                     # oracle 9, random 5
    shared = DQN(family, tasks, **{**kw, "total_steps": 6000}).learn(progress=False)
    assert shared.evaluate(episodes=20, seed=5).mean(1).min() < 6.0
    with pytest.raises(ValueError, match="one per task"):
        independent.evaluate(tasks[:1])


def test_independent_gradient_clipping_is_per_network():
    from metadqn.dqn_agent import _clip
    p = {"w": torch.zeros(2, 3, requires_grad=True)}
    p["w"].grad = torch.tensor([[100.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    _clip(p, 10.0, per_task=True)
    assert p["w"].grad[0, 0].item() == pytest.approx(10.0, rel=1e-4) and p["w"].grad[1, 0].item() == 1.0


def test_independent_dqn_on_one_task_is_the_ordinary_dqn():
    family = metadqn.make_family("driving")
    task = family.sample_tasks(1, seed=4)[0]
    kw = dict(total_steps=600, eval_every=0, seed=3, learning_starts=500)  # ~50 gradient steps
    one = DQN(family, task, **kw).learn(progress=False)
    vmapped = DQN(family, [task], independent=True, **kw).learn(progress=False)
    for k, v in one.params.items():
        torch.testing.assert_close(vmapped.params[k][0], v.detach(), atol=1e-5, rtol=1e-4)


def test_replay_batch_size_zero_returns_every_held_transition_once():
    buf = TaskReplay(2, 2, 6, (1,))
    for t in range(3):
        buf.add(torch.full((2, 2, 1), float(t)), torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), float(t)),
                torch.full((2, 2, 1), t + 1.0), torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.bool))
    batch = buf.sample(0, n_step=1, gamma=0.5)
    assert batch.obs.shape == (2, 6, 1)
    assert batch.obs[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2]             # oldest first, every env
    assert torch.equal(batch.returns[1], torch.tensor([0.0, 0, 1, 1, 2, 2]))
    assert torch.equal(batch.next_obs[:, :, 0], batch.obs[:, :, 0] + 1)
