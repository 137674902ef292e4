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
from metadqn.scale import RolloutWorkers, ScaleError, rollout_workers  # noqa: E402
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
    with rollout_workers(family, workers):
        env = family.make_batched(tasks, 2, seed=3)
        gen = torch.Generator().manual_seed(0)
        seen = [env.reset()]
        for t in range(steps):
            if kill is not None and t == kill[0]:
                ray.kill(env.vector.actors[kill[1]], no_restart=True)
            out = env.step(torch.randint(0, env.n_actions, env.batch_shape, generator=gen))
            seen += [out.next_obs, out.reward, out.done.float()]
        env.close()
    return torch.cat([x.flatten() for x in seen]), env.vector


def test_one_and_two_workers_step_the_same_transitions_as_none(cluster):
    family = _acrobot()
    tasks = family.split(3, 1, seed=0)[0]
    local, _ = _transitions(family, tasks, None)
    one, v1 = _transitions(family, tasks, RolloutWorkers(1))
    two, v2 = _transitions(family, tasks, RolloutWorkers(2))
    assert len(v1.bounds) == 1 and v2.bounds == [(0, 3), (3, 6)]
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


def test_one_pool_serves_every_env_made_inside_rollout_workers(cluster):
    from metadqn.rollout import greedy_returns
    from metadqn.scale.rollout import WorkerPool
    from metadqn.tasks.gym_adapter import sync_vector
    family = _acrobot()
    tasks = family.split(3, 1, seed=0)[0]
    random_q = lambda obs: torch.zeros(*obs.shape[:2], 3)  # noqa: E731  (epsilon=1: uniformly random)
    here = greedy_returns(family, tasks, random_q, episodes=2, seed=4, epsilon=1.0)
    with rollout_workers(family, RolloutWorkers(2)):
        pool = family.vector_env
        assert isinstance(pool, WorkerPool)
        first = family.make_batched(tasks, 2, seed=0)
        second = family.make_batched(tasks, 1, seed=0)
        assert first.vector.actors == second.vector.actors == pool.actors  # started once, lent to both
        there = greedy_returns(family, tasks, random_q, episodes=2, seed=4, epsilon=1.0)
    assert torch.equal(here, there) and bool((here < 0).all())
    assert family.vector_env is sync_vector and pool.actors == []


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


def test_evaluate_with_rollout_workers_gives_the_same_result(cluster, tmp_path):
    from metadqn.tasks import register_family
    register_family("gym-cartpole-test", lambda max_episode_steps=50: from_gymnasium(
        "CartPole-v1", {"gravity": (8.0, 12.0)}, max_episode_steps=max_episode_steps), overwrite=True)
    run = tmp_path / "cp"
    assert main(["train", "--family", "gym-cartpole-test", "--algo", "maml", "--iterations", "2",
                 "--set", "n_train_tasks=3", "--set", "n_test_tasks=2", "--set", "envs_per_task=1",
                 "--set", "eval_every=0", "--quiet", "--out", str(run)]) == 0
    common = ["evaluate", str(run), "--budgets", "1", "--steps", "0,1", "--seeds", "2", "--eval-episodes", "2",
              "--baselines", "", "--oracle-steps", "2000", "--quiet"]
    assert main([*common, "--json", str(tmp_path / "here.json")]) == 0
    assert main([*common, "--json", str(tmp_path / "there.json"), "--rollout-workers", "2"]) == 0
    here, there = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("here", "there"))
    assert here["methods"] == there["methods"] and here["references"] == there["references"]
    assert here["references"]["oracle_return_mean"] > here["references"]["random_return_mean"] + 5


def test_an_error_in_the_users_env_on_a_worker_names_it(cluster):
    def setter(env, p):
        if p["gravity"] > 11.0:
            raise RuntimeError("gravity too high for this rig")
        env.gravity = p["gravity"]
    family = from_gymnasium("CartPole-v1", {"gravity": (5.0, 15.0)}, setter, name="rig")
    tasks = [family.validate_task({"gravity": 12.0})]
    with pytest.raises(UserCodeError, match="gravity too high for this rig"), rollout_workers(family, RolloutWorkers(1)):
        family.make_batched(tasks, 1, seed=0)


def test_workers_need_a_from_gymnasium_family_and_enough_cpus(cluster, tmp_path, capsys):
    assert main(["train", "--family", "gridnav", "--rollout-workers", "2", "--out", str(tmp_path / "g")]) == 2
    assert "from_gymnasium" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
    family = _acrobot()
    with pytest.raises(ScaleError, match="need more than the 2 CPUs"), rollout_workers(family, RolloutWorkers(3)):
        pass
    assert main(["train", "--family", "acrobot-physics", "--address", "auto", "--out", str(tmp_path / "a")]) == 2
    assert "--rollout-workers" in capsys.readouterr().err
    with pytest.raises(ScaleError, match=">= 0"):
        RolloutWorkers(-1)


SWEEP = dict(base={"iterations": 4, "n_train_tasks": 6, "n_test_tasks": 3, "eval_every": 0, "checkpoint_every": 2})


def test_a_two_trial_sweep_scores_each_run_writes_its_table_and_resumes(cluster, tmp_path):
    from metadqn.runs import resume_meta_run
    from metadqn.scale.sweep import SweepConfig, headline, run_sweep
    settings = SweepConfig(eval_seeds=2)
    out = tmp_path / "sw"
    summary = run_sweep("gridnav", {"inner_lr": [0.5, 2.0]}, out=out, settings=settings, verbose=False, **SWEEP)
    assert summary["complete"] and len(summary["trials"]) == 2
    assert {r["values"]["inner_lr"] for r in summary["trials"]} == {0.5, 2.0}
    for row in summary["trials"]:
        assert row["status"] == "done" and row["iterations"] == 4 and row["wall_s"] > 0
        assert row["nr"]["ci_low"] <= row["nr"]["mean"] <= row["nr"]["ci_high"]
        # the score is the evaluation protocol's NR of that very run
        again = headline(resume_meta_run(row["run"]), json.loads((out / "references.json").read_text()), settings)
        assert again["nr"] == pytest.approx(row["nr"])
    means = [r["nr"]["mean"] for r in summary["trials"]]
    assert means == sorted(means, reverse=True) and summary["best"] == summary["trials"][0]["name"]
    table = (out / "sweep.md").read_text()
    assert table.count("| done |") == 2 and (out / "sweep.png").stat().st_size > 1000
    # the best config trains as it is
    best = json.loads((out / "best_config.json").read_text())
    assert best["inner_lr"] == summary["trials"][0]["values"]["inner_lr"]
    assert main(["train", "--config", str(out / "best_config.json"), "--iterations", "1", "--quiet",
                 "--out", str(tmp_path / "best")]) == 0

    # run again, as after an interrupt: only what is missing is done
    kept, lost = (out / "trials" / summary["trials"][0]["name"]), (out / "trials" / summary["trials"][1]["name"])
    stamp = (kept / "result.json").stat().st_mtime_ns
    (lost / "result.json").unlink()  # as if interrupted after its last checkpoint
    again = run_sweep("gridnav", {"inner_lr": [0.5, 2.0]}, out=out, settings=settings, verbose=False, **SWEEP)
    assert (kept / "result.json").stat().st_mtime_ns == stamp  # not run again
    redone = next(r for r in again["trials"] if r["name"] == lost.name)
    assert redone["resumed_at"] == 4 and redone["nr"] == summary["trials"][1]["nr"]
    assert len((lost / "metrics.jsonl").read_text().splitlines()) == 4  # continued, not restarted
    with pytest.raises(Exception, match="holds a different sweep"):
        run_sweep("gridnav", {"inner_lr": [0.5, 3.0]}, out=out, settings=settings, verbose=False, **SWEEP)


def test_sweep_input_errors_are_one_line(tmp_path, capsys):
    from metadqn.scale.sweep import parse_grid, trial_values, trials
    assert parse_grid(["inner_lr=[0.1,0.5]", "seed=[0]"]) == {"inner_lr": [0.1, 0.5], "seed": [0]}
    assert trial_values("gridnav", {"net": {"hidden": [32]}, "seed": 1}, {"net.context": 4, "seed": 2}) == {
        "net": {"hidden": [32], "context": 4}, "seed": 2,  # and gridnav's recommended settings:
        "context_starts": 8, "support_episodes_max": 2, "eps_query": 0.3, "query_replay": 2000,
        "reward_model": "next", "model_obs_weight": 0.0, "time_feature": True, "context_pool": 3}
    assert [t["label"] for t in trials({"b": [1, 2], "a": ["x"]}, samples=2)] == [
        'a="x",b=1,sample=0', 'a="x",b=1,sample=1', 'a="x",b=2,sample=0', 'a="x",b=2,sample=1']
    for grid, message in ((["inner_lr=0.1"], "JSON list"), (["inner_lr=[]"], "JSON list"),
                          (["n_test_tasks=[5,10]"], "share the held-out tasks"),
                          (["inner_lrr=[0.1]"], "inner_lrr")):
        assert main(["sweep", *sum((["--grid", g] for g in grid), []), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["sweep", "--out", str(tmp_path / "x")]) == 2
    assert "--grid" in capsys.readouterr().err
