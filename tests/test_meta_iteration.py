"""Wiring: one meta-iteration equals a hand-built MAML step, and training-time and test-time
adaptation produce the same θ' from the same data (the one adaptation path)."""

import pytest
import torch
from torch.func import vmap

import metadqn
import metadqn.meta.iteration as it
from metadqn.adaptation import adapt_batch
from metadqn.learner import MAMLDQN
from metadqn.meta import InnerLoop, adapt_tasks, maml_loss
from metadqn.nets import q_values
from metadqn.replay import Batch, Query, TaskReplay
from metadqn.rollout import collect, params_q
from metadqn.seeding import derive_seed

TINY = dict(iterations=1, envs_per_task=2, support_batch=16, query_batch=16, eval_every=0, checkpoint_every=0,
            net={"hidden": [16]}, seed=3)


def _per_instance_q(net, params):
    """Q over obs [task, env, ...] for params with a leading task*env axis (by hand)."""
    def q_fn(obs):
        t, e = obs.shape[:2]
        flat = obs.reshape(t * e, 1, *obs.shape[2:])
        return vmap(lambda p, o: q_values(net, p, o))(params, flat).reshape(t, e, -1)
    return q_fn


@pytest.mark.parametrize("algo,weights", [("maml", "uniform"), ("fomaml", "uniform"), ("maml", [1.0, 0.0, 0.0, 3.0])])
def test_one_meta_iteration_equals_hand_built_maml_loss_and_adam_step(algo, weights):
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(4, 0, seed=0)
    learner = MAMLDQN(family, algo=algo, task_weights=weights, **TINY)
    cfg, net, horizon = learner.config, learner.net, family.max_episode_steps
    theta = {k: v.detach().clone() for k, v in learner.params.items()}
    learner.meta_train(train, progress=False)

    # the same iteration from the low-level pieces, with the learner's documented seeds
    env = family.make_batched(train, cfg.envs_per_task, seed=derive_seed(cfg.seed, "meta-env"))
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "meta-train"))
    n = len(train) * cfg.envs_per_task
    support_buf, query_buf = (TaskReplay(n, 1, horizon, env.obs_shape) for _ in range(2))
    collect(env, support_buf, params_q(net, theta), epsilon=cfg.eps_support, steps=horizon, generator=gen)
    support = support_buf.sample(cfg.support_batch, 1, cfg.gamma, generator=gen)
    inner = InnerLoop(lr=cfg.inner_lr, steps=cfg.inner_steps, first_order=algo == "fomaml")
    adapted = adapt_tasks(net, theta, support, inner)
    collect(env, query_buf, _per_instance_q(net, adapted), epsilon=cfg.eps_query, steps=horizon, generator=gen)
    query = query_buf.sample(cfg.query_batch, 1, cfg.gamma, generator=gen)
    params = {k: v.clone().requires_grad_() for k, v in theta.items()}
    per_instance, _ = maml_loss(net, params, support, query, inner, outer_target=theta)
    w = torch.ones(len(train)) if weights == "uniform" else torch.tensor(weights)
    w = w.repeat_interleave(cfg.envs_per_task)
    ((w * per_instance).sum() / w.sum()).backward()
    torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.grad_clip)
    torch.optim.Adam(list(params.values()), lr=cfg.outer_lr).step()

    for k in params:
        assert torch.allclose(learner.params[k], params[k], atol=1e-6), k
        assert not torch.allclose(params[k], theta[k])  # a real step was taken


def test_training_and_test_time_adaptation_give_the_same_adapted_parameters():
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    learner = MAMLDQN(family, algo="metasgd", inner_params="head", inner_steps=2, **TINY)
    learner.meta_train(train, progress=False)
    task, seed, k = test[0], 11, 2
    got = learner.adapt(task, episodes=1, steps=k, seed=seed)  # the test-time path (learner.adapt)

    # the data that path collects, by hand
    env = family.make_batched([task], 1, seed=derive_seed(seed, "support-env"))
    gen = torch.Generator().manual_seed(derive_seed(seed, "support"))
    buf = TaskReplay(1, 1, family.max_episode_steps, env.obs_shape)
    theta = {name: v.detach() for name, v in learner.params.items()}
    collect(env, buf, params_q(learner.net, theta), epsilon=learner.config.eps_support,
            steps=family.max_episode_steps, generator=gen)
    support = buf.sample(learner.config.support_batch, 1, learner.config.gamma, generator=gen)
    lrs = {name: v.detach() for name, v in learner.inner_lrs.items()}
    inner = InnerLoop(lr=lrs, steps=k, keys=("fcs.1.weight", "fcs.1.bias"))
    # the training-time inner loop (the one maml_loss differentiates through)
    _, trained_path = maml_loss(learner.net, theta, support, support, inner)
    batched_path = adapt_batch(learner.adapter(), support, k)
    for name in theta:
        assert torch.allclose(got[name], trained_path[name][0], atol=1e-6), name
        assert torch.allclose(batched_path[name][0], trained_path[name][0], atol=1e-6), name
    assert not torch.allclose(got["fcs.1.weight"], theta["fcs.1.weight"])
    assert torch.equal(got["fcs.0.weight"], theta["fcs.0.weight"])  # head only


@pytest.mark.parametrize("algo", ["context", "maml"])
def test_keep_best_ends_with_the_parameters_of_the_best_check_on_the_training_tasks(algo, tmp_path):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    settings = {**TINY, "iterations": 6, "keep_best_every": 1, "outer_lr": 0.05}  # a big step: returns move
    snapshots = {}
    learner = MAMLDQN(family, algo=algo, **settings)
    learner.meta_train(train, test_tasks=test, progress=False,
                       callback=lambda lr, row: snapshots.update({row["iteration"]: ({k: v.detach().clone() for k, v
                                                                                       in lr.params.items()}, row)}))
    scores = [snapshots[i][1]["train_return_adapted"] for i in range(1, 7)]
    best = 1 + max(range(6), key=lambda i: (scores[i], -i))  # the first of the highest
    assert len(set(scores)) > 1  # the checks tell the iterations apart
    assert snapshots[6][1]["best_iteration"] == best and learner.best.iteration == best
    kept = snapshots[best][0]  # (at the last iteration the callback sees the kept parameters)
    for k, v in learner.params.items():
        assert torch.equal(v, kept[k]), k
        assert torch.equal(learner.state.target[k], kept[k]), k  # the target too
    # the check is the adapted return on the training tasks with fixed support data
    again = MAMLDQN(family, algo=algo, **settings)
    again.meta_train(train, iterations=best, test_tasks=test, progress=False)
    res = again.adaptation_returns(train, steps=(again.config.inner_steps,), runs=again.config.eval_runs,
                                   seed=derive_seed(again.config.seed, "keep-best"))
    assert float(res["return"][again.config.inner_steps].mean()) == pytest.approx(scores[best - 1])


def test_keep_best_resumes_bit_exactly(tmp_path):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    settings = {**TINY, "iterations": 6, "keep_best_every": 2, "outer_lr": 0.05, "checkpoint_every": 1}
    full = MAMLDQN(family, algo="context", **settings).meta_train(train, test_tasks=test, out_dir=tmp_path / "full",
                                                                   progress=False)
    part = MAMLDQN(family, algo="context", **settings)
    part.meta_train(train, iterations=3, test_tasks=test, out_dir=tmp_path / "part", progress=False)
    resumed = MAMLDQN.load(tmp_path / "part" / "checkpoint.safetensors")
    assert resumed.best is not None and resumed.best.iteration == part.best.iteration
    resumed.meta_train(out_dir=tmp_path / "part", progress=False)
    assert resumed.best.iteration == full.best.iteration and resumed.best.score == full.best.score
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k]), k
    with pytest.raises(ValueError, match="keep_best_every"):
        MAMLDQN(family, keep_best_every=-1)


def test_outer_lr_decay_scales_each_iterations_step_and_resumes_bit_exactly(tmp_path):
    # iteration i steps with β (1 − decay · i / iterations): the first iteration is the constant-β
    # run's, so the second sees the same data and gradients, and Adam's step is exactly 0.7× as long
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(4, 0, seed=0)
    settings = {**TINY, "iterations": 2, "checkpoint_every": 1}

    def steps(decay, out):
        snaps = []
        learner = MAMLDQN(family, algo="maml", outer_lr_decay=decay, **settings)
        snaps.append({k: v.detach().clone() for k, v in learner.params.items()})
        learner.meta_train(train, out_dir=out, progress=False,
                           callback=lambda lr, row: snaps.append({k: v.detach().clone() for k, v in lr.params.items()}))
        return snaps
    const, decayed = steps(0.0, tmp_path / "c"), steps(0.6, tmp_path / "d")
    assert MAMLDQN(family, iterations=10, outer_lr_decay=0.6).config.outer_lr_at(5) == pytest.approx(0.7e-3)
    for k in const[0]:
        assert torch.equal(const[1][k], decayed[1][k]), k  # iteration 0: β
        full, short = const[2][k] - const[1][k], decayed[2][k] - decayed[1][k]
        assert full.abs().max() > 0
        assert torch.allclose(short, 0.7 * full, atol=1e-7), k  # iteration 1: 0.7 β
    part = MAMLDQN(family, algo="maml", outer_lr_decay=0.6, **settings)
    part.meta_train(train, iterations=1, out_dir=tmp_path / "p", progress=False)
    resumed = MAMLDQN.load(tmp_path / "p" / "checkpoint.safetensors")
    resumed.meta_train(out_dir=tmp_path / "p", progress=False)
    for k in resumed.params:
        assert torch.equal(resumed.params[k], decayed[2][k]), k
    with pytest.raises(ValueError, match="outer_lr_decay must be in"):
        MAMLDQN(family, outer_lr_decay=1.5)


@pytest.mark.parametrize("n_step", [1, 3])
def test_the_outer_loss_gets_n_step_td_data_and_the_model_the_same_transitions_one_step_long(outer_loss_calls,
                                                                                            n_step):
    """Context MAML with n-step TD: every meta-update's outer loss receives a Query whose step
    part is the query replay's own 1-step transitions (rewards, next observations) at the
    transitions of the n-step part; with n = 1 a plain Batch, as before."""
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(2, 0, seed=0)
    learner = MAMLDQN(family, algo="context", n_step=n_step, outer_steps=2, **TINY)
    learner.meta_train(train, progress=False)
    assert len(outer_loss_calls) == 2
    for _, q in outer_loss_calls:
        if n_step == 1:
            assert isinstance(q, Batch)
            continue
        assert isinstance(q, Query) and torch.equal(q.td.obs, q.step.obs) and torch.equal(q.td.action, q.step.action)
        # gridnav's dense reward is minus the next cell's distance to the goal, scaled: one step's reward is
        # at most 0 and the same function of the next cell wherever it comes from; n-step sums are lower
        assert (q.step.returns <= 0).all() and (q.td.returns <= q.step.returns + 1e-6).all()
        assert (q.td.returns < q.step.returns - 1e-6).any()
        one = (q.step.discount - learner.config.gamma).abs() < 1e-6
        assert one.any() and ((q.step.discount == 0) | one).all()  # 1-step discounts only
