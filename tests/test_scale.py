"""Scale-out on Ray: rollout workers (same transitions, surviving a killed actor) and sweeps.

Runs on a local Ray cluster of two simulated nodes (``ray.cluster_utils.Cluster``, one CPU
each), so the two rollout workers land on different nodes.
"""

from __future__ import annotations

import json

import pytest
import torch

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'metadqn[ray]')")

from metadqn import MAMLDQN  # noqa: E402
from metadqn.cli import main  # noqa: E402
from metadqn.families import from_gymnasium  # noqa: E402
from metadqn.scale import RolloutWorkers, ScaleError, make_env  # noqa: E402
from metadqn.tasks import UserCodeError, make_family  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def _acrobot():
    return make_family("acrobot-physics", max_episode_steps=25)


def _transitions(family, tasks, workers, *, steps=60, kill=None):
    """Every observation, reward and done flag of ``steps`` random-action steps (seeded), and
    the env's vector (to read its restart counts)."""
    env = make_env(family, tasks, 2, seed=3, workers=workers)
    gen = torch.Generator().manual_seed(0)
    seen = [env.reset()]
    try:
        for t in range(steps):
            if kill is not None and t == kill[0]:
                ray.kill(env.vector.actors[kill[1]], no_restart=True)
            out = env.step(torch.randint(0, env.n_actions, env.batch_shape, generator=gen))
            seen += [out.next_obs, out.reward, out.done.float()]
    finally:
        env.close()
    return torch.cat([x.flatten() for x in seen]), env.vector


def test_one_and_two_workers_step_the_same_transitions_as_none(cluster):
    family = _acrobot()
    tasks = family.split(3, 1, seed=0)[0]
    local, _ = _transitions(family, tasks, None)
    one, v1 = _transitions(family, tasks, RolloutWorkers(1))
    two, v2 = _transitions(family, tasks, RolloutWorkers(2))
    assert len(v1.actors) == 1 and len(v2.actors) == 2 and v2.bounds == [(0, 3), (3, 6)]
    assert torch.equal(local, one) and torch.equal(local, two)
    assert int((local != 0).sum()) > 1000  # real data: episodes ended (25 steps) and restarted


def test_a_killed_worker_is_replaced_and_its_episodes_replayed(cluster):
    family = _acrobot()
    tasks = family.split(3, 1, seed=0)[0]
    local, _ = _transitions(family, tasks, None)
    # killed mid-episode (step 37: every env is 12 steps into its second episode)
    survived, vector = _transitions(family, tasks, RolloutWorkers(2), kill=(37, 1))
    assert vector.restarts == [0, 1]
    assert torch.equal(local, survived)
    with pytest.raises(ScaleError, match="died 1 times"):
        _transitions(family, tasks, RolloutWorkers(2, max_restarts=0), kill=(5, 0))


def test_meta_training_on_workers_equals_meta_training_here(cluster, tmp_path):
    family = _acrobot()
    train, test = family.split(4, 2, seed=0)
    settings = dict(algo="maml", envs_per_task=2, iterations=2, eval_every=0, seed=1)
    here = MAMLDQN(family, **settings).meta_train(train, test_tasks=test, progress=False)
    there = MAMLDQN(family, **settings).meta_train(train, test_tasks=test, progress=False,
                                                  workers=RolloutWorkers(2), out_dir=tmp_path / "run")
    for k in here.params:
        assert torch.equal(here.params[k], there.params[k]), k
    assert any(float((here.params[k] - MAMLDQN(family, **settings).params[k]).detach().abs().max()) > 0 for k in here.params)
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["iteration"] == 2


def test_an_error_in_the_users_env_on_a_worker_names_it(cluster):
    def setter(env, p):
        if p["gravity"] > 11.0:
            raise RuntimeError("gravity too high for this rig")
        env.gravity = p["gravity"]
    family = from_gymnasium("CartPole-v1", {"gravity": (5.0, 15.0)}, setter, name="rig")
    tasks = [family.validate_task({"gravity": 12.0})]
    with pytest.raises(UserCodeError, match="gravity too high for this rig"):
        make_env(family, tasks, 1, seed=0, workers=RolloutWorkers(1))


def test_workers_need_a_from_gymnasium_family_and_enough_cpus(cluster, tmp_path, capsys):
    assert main(["train", "--family", "gridnav", "--rollout-workers", "2", "--out", str(tmp_path / "g")]) == 2
    assert "from_gymnasium" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
    family = _acrobot()
    with pytest.raises(ScaleError, match="need more than the 2 CPUs"):
        make_env(family, family.split(3, 1, seed=0)[0], 2, seed=0, workers=RolloutWorkers(3))
    assert main(["train", "--family", "acrobot-physics", "--address", "auto", "--out", str(tmp_path / "a")]) == 2
    assert "--rollout-workers" in capsys.readouterr().err
    with pytest.raises(ScaleError, match=">= 0"):
        RolloutWorkers(-1)
