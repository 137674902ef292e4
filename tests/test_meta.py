"""MAML-DQN: vmapped meta-gradients against explicit loops and finite differences,
Reptile, reproducibility, exact resume, bad configs."""

import json

import pytest
import torch

import metadqn
from metadqn.config import ConfigError
from metadqn.meta import InnerLoop, adapt, adapt_tasks, maml_loss, reptile_direction, task_weights
from metadqn.nets import NetSpec, build_qnet, init_params
from metadqn.replay import Batch
from metadqn.runlog import read_metrics
from metadqn.learner import MAMLDQN
from metadqn.td import td_loss

T, B, OBS, A = 5, 12, 3, 4


def _setup(seed=0):
    torch.manual_seed(seed)
    net = build_qnet(NetSpec(hidden=(16, 16), activation="tanh"), (OBS,), A).double()
    params = {k: v.double().requires_grad_() for k, v in init_params(net, seed).items()}
    target = {k: v.detach() + 0.01 for k, v in params.items()}

    def batch():
        f = dict(dtype=torch.float64)
        return Batch(torch.randn(T, B, OBS, **f), torch.randint(0, A, (T, B)), torch.randn(T, B, **f),
                     torch.randn(T, B, OBS, **f), torch.rand(T, B, **f))
    return net, params, target, batch(), batch()


def _loop_meta_grad(net, params, target, support, query, lr, steps, first_order, lrs=None):
    """The reference: a Python loop over tasks with torch.autograd.grad(create_graph=True)."""
    total = 0.0
    for i in range(T):
        p = dict(params)
        for _ in range(steps):
            g = torch.autograd.grad(td_loss(net, p, support.row(i), target=target), list(p.values()),
                                    create_graph=not first_order)
            p = {k: v - (lrs[k] if lrs else lr) * (gk.detach() if first_order else gk)
                 for (k, v), gk in zip(p.items(), g)}
        total = total + td_loss(net, p, query.row(i), target=target)
    wrt = list(params.values()) + (list(lrs.values()) if lrs else [])
    return torch.autograd.grad(total / T, wrt)


def _rel_err(a, b):
    return max(((x - y).norm() / y.norm().clamp_min(1e-12)).item() for x, y in zip(a, b))


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 3])
def test_vmapped_meta_gradient_equals_explicit_loop(first_order, steps):
    net, params, target, support, query = _setup()
    per_task, _ = maml_loss(net, params, support, query, InnerLoop(lr=0.3, steps=steps, first_order=first_order),
                            inner_target=target, outer_target=target)
    got = torch.autograd.grad(per_task.mean(), list(params.values()))
    want = _loop_meta_grad(net, params, target, support, query, 0.3, steps, first_order)
    assert _rel_err(got, want) <= 1e-5


def test_second_order_differs_from_first_order():
    net, params, target, support, query = _setup()
    grads = [torch.autograd.grad(maml_loss(net, params, support, query, InnerLoop(lr=0.3, steps=2, first_order=fo),
                                           inner_target=target, outer_target=target)[0].mean(), list(params.values()))
             for fo in (False, True)]
    g2, g1 = grads
    assert _rel_err(g1, g2) > 1e-3


def test_metasgd_gradient_wrt_learned_step_sizes_equals_loop():
    net, params, target, support, query = _setup()
    lrs = {k: torch.full_like(v, 0.2).requires_grad_() for k, v in params.items()}
    per_task, _ = maml_loss(net, params, support, query, InnerLoop(lr=lrs, steps=2), inner_target=target,
                            outer_target=target)
    got = torch.autograd.grad(per_task.mean(), list(params.values()) + list(lrs.values()))
    want = _loop_meta_grad(net, params, target, support, query, None, 2, False, lrs)
    assert _rel_err(got, want) <= 1e-5


def test_meta_gradient_matches_finite_differences():
    net, params, target, support, query = _setup(seed=1)

    def f(flat):
        p, i = {}, 0
        for k, v in params.items():
            p[k] = flat[i:i + v.numel()].view_as(v)
            i += v.numel()
        return maml_loss(net, p, support, query, InnerLoop(lr=0.3, steps=2), inner_target=target, outer_target=target,
                         double=False, loss="mse")[0].mean()

    flat = torch.cat([v.detach().flatten() for v in params.values()]).requires_grad_()
    (g,) = torch.autograd.grad(f(flat), flat)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.randn(flat.shape, generator=gen, dtype=flat.dtype)
        eps = 1e-6
        fd = (f(flat.detach() + eps * d) - f(flat.detach() - eps * d)) / (2 * eps)
        assert float(g @ d) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)


def test_reptile_direction_points_to_mean_adapted_params():
    net, params, target, support, _ = _setup()
    inner = InnerLoop(lr=0.3, steps=3, first_order=True)
    adapted = adapt_tasks(net, params, support, inner, target=target)
    direction = reptile_direction(params, adapted)
    for i in range(T):
        one = adapt(net, params, support.row(i), inner, target=target)
        for k in params:
            assert torch.allclose(adapted[k][i], one[k], atol=1e-10)
    for k, v in params.items():
        assert torch.allclose(direction[k], v.detach() - adapted[k].mean(0))


def _tiny(**kw):
    base = dict(algo="maml", iterations=4, envs_per_task=2, support_batch=16, query_batch=16, eval_every=2, eval_runs=1,
                eval_episodes=1, checkpoint_every=2, net={"hidden": [16]}, seed=3)
    return {**base, **kw}


@pytest.mark.parametrize("algo", ["maml", "fomaml", "reptile", "metasgd"])
def test_same_seed_gives_same_metrics(tmp_path, algo):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    for run in ("a", "b"):
        MAMLDQN(family, **_tiny(algo=algo)).meta_train(train, test_tasks=test, out_dir=tmp_path / run, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "a")) == strip(read_metrics(tmp_path / "b"))


@pytest.mark.parametrize("algo,extra", [("maml", {}), ("metasgd", {}),
                                        ("maml", {"query_replay": 120, "eps_query": 0.5})])  # replay is saved too
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, algo, extra):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    full = MAMLDQN(family, **_tiny(algo=algo, iterations=6, **extra))
    full.meta_train(train, test_tasks=test, out_dir=tmp_path / "full", progress=False)
    part = MAMLDQN(family, **_tiny(algo=algo, iterations=6, **extra))
    part.meta_train(train, iterations=4, test_tasks=test, out_dir=tmp_path / "part", progress=False)
    # a kill after the checkpoint at iteration 4 would have logged more rows: resume drops them
    with open(tmp_path / "part" / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 5, "stale": True}) + "\n")
    resumed = MAMLDQN.load(tmp_path / "part" / "checkpoint.safetensors")
    assert resumed.iteration == 4
    resumed.meta_train(resumed.train_tasks, test_tasks=resumed.test_tasks, out_dir=tmp_path / "part", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "part")) == strip(read_metrics(tmp_path / "full"))
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k])


@pytest.mark.parametrize("bad,match", [
    ({"algo": "maml2"}, "algo must be one of"),
    ({"inner_lr": -1.0}, "inner_lr must be a positive"),
    ({"inner_target": "oracle"}, "inner_target must be one of"),
    ({"task_weights": "hardest"}, "task_weights must be one of"),
    ({"iterations": "many"}, "expected an integer"),
    ({"bogus": 1}, "unknown key"),
])
def test_bad_meta_config_is_a_clear_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        MAMLDQN("gridnav", **{"algo": "maml", **bad})


def test_user_task_weights_must_match_the_training_tasks():
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(4, 0, seed=0)
    with pytest.raises(ValueError, match="3 weights for 4 training tasks"):
        MAMLDQN(family, **_tiny(task_weights=[1.0, 2.0, 3.0])).meta_train(train, progress=False)


def test_difficulty_weights_follow_the_query_losses():
    # (user weights in a real meta-iteration: tests/test_meta_iteration.py)
    losses = torch.tensor([1.0, 2.0, 3.0, 100.0])
    w = task_weights("difficulty", losses, 4, torch.device("cpu"))
    raw = losses / losses.mean()
    assert torch.allclose(w, raw.clamp(0.1, 10.0))
    assert torch.allclose(task_weights("uniform", losses, 4, torch.device("cpu")), torch.ones(4))
    assert torch.allclose(task_weights([1.0, 3.0], None, 2, torch.device("cpu")), torch.tensor([0.5, 1.5]))


def test_context_only_inner_loop_matches_explicit_loop_and_leaves_the_body_alone():
    torch.manual_seed(1)
    net = build_qnet(NetSpec(hidden=(16,), activation="tanh", context=3), (OBS,), A).double()
    params = {k: (v.double() + (0.1 if k == "context" else 0.0)).requires_grad_() for k, v in init_params(net, 1).items()}
    _, _, _, support, query = _setup()
    per_task, adapted = maml_loss(net, params, support, query, InnerLoop(lr=0.7, steps=2, keys=("context",)),
                                  double=False)
    loss = per_task.mean()
    for k in params:
        if k != "context":
            assert torch.equal(adapted[k][0], params[k].detach())
    assert not torch.allclose(adapted["context"][0], params["context"].detach())
    got = torch.autograd.grad(loss, list(params.values()))
    total = 0.0
    for i in range(T):
        ctx = params["context"]
        for _ in range(2):
            p = {**params, "context": ctx}
            (g,) = torch.autograd.grad(td_loss(net, p, support.row(i), double=False), [ctx], create_graph=True)
            ctx = ctx - 0.7 * g
        total = total + td_loss(net, {**params, "context": ctx}, query.row(i), double=False)
    want = torch.autograd.grad(total / T, list(params.values()))
    assert _rel_err(got, want) < 1e-6


def test_inner_params_choices_are_validated():
    with pytest.raises(ValueError, match="net.context"):
        MAMLDQN("gridnav", algo="maml", inner_params="context")
    with pytest.raises(ValueError, match="reptile"):
        MAMLDQN("gridnav", algo="reptile", inner_params="head")
    learner = MAMLDQN("gridnav", inner_params="head", algo="metasgd")
    assert set(learner.inner_lrs) == {"fcs.2.weight", "fcs.2.bias"}


@pytest.mark.parametrize("first_order", [False, True])
def test_cnn_meta_gradient_equals_explicit_loop(first_order):
    """The image-observation Q-network (convolutions) through the same vmapped inner loop."""
    torch.manual_seed(2)
    shape = (2, 4, 4)
    net = build_qnet(NetSpec(kind="cnn", channels=(3,), hidden=(8,), activation="tanh"), shape, A).double()
    params = {k: v.double().requires_grad_() for k, v in init_params(net, 2).items()}
    target = {k: v.detach() + 0.01 for k, v in params.items()}
    f = dict(dtype=torch.float64)

    def batch():
        return Batch(torch.rand(T, B, *shape, **f), torch.randint(0, A, (T, B)), torch.randn(T, B, **f),
                     torch.rand(T, B, *shape, **f), torch.rand(T, B, **f))
    support, query = batch(), batch()
    per_task, _ = maml_loss(net, params, support, query, InnerLoop(lr=0.3, steps=2, first_order=first_order),
                            inner_target=target, outer_target=target)
    got = torch.autograd.grad(per_task.mean(), list(params.values()))
    want = _loop_meta_grad(net, params, target, support, query, 0.3, 2, first_order)
    assert _rel_err(got, want) <= 1e-5


def test_recurrent_meta_gradient_equals_explicit_loop():
    """The GRU Q-network over observation windows through the same vmapped inner loop."""
    torch.manual_seed(3)
    shape = (4, 3)
    net = build_qnet(NetSpec(kind="gru", hidden=(6, 5), activation="tanh"), shape, A).double()
    params = {k: v.double().requires_grad_() for k, v in init_params(net, 3).items()}
    target = {k: v.detach() + 0.01 for k, v in params.items()}
    f = dict(dtype=torch.float64)

    def batch():
        obs = torch.randn(T, B, *shape, **f)
        obs[:, : B // 2, 0] = 0.0  # padded windows too
        return Batch(obs, torch.randint(0, A, (T, B)), torch.randn(T, B, **f), torch.randn(T, B, *shape, **f),
                     torch.rand(T, B, **f))
    support, query = batch(), batch()
    per_task, _ = maml_loss(net, params, support, query, InnerLoop(lr=0.3, steps=2), inner_target=target,
                            outer_target=target)
    got = torch.autograd.grad(per_task.mean(), list(params.values()))
    want = _loop_meta_grad(net, params, target, support, query, 0.3, 2, False)
    assert _rel_err(got, want) <= 1e-5


def test_outer_steps_takes_that_many_meta_updates_per_batch_of_episodes():
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(4, 0, seed=0)
    runs = {}
    for steps in (1, 3):
        learner = MAMLDQN(family, **_tiny(iterations=2, outer_steps=steps, eval_every=0))
        learner.meta_train(train, progress=False)
        (state,) = [s for s in learner.state.optimizer.state.values()][:1]
        assert int(state["step"]) == 2 * steps  # Adam steps taken
        assert learner.env_steps == 2 * 4 * 2 * 2 * family.max_episode_steps  # same data either way
        runs[steps] = learner.params
    assert any(not torch.equal(runs[1][k], runs[3][k]) for k in runs[1])



def test_query_replay_keeps_earlier_iterations_data():
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(4, 0, seed=0)
    learner = MAMLDQN(family, **_tiny(iterations=3, query_replay=200, eval_every=0))
    learner.meta_train(train, progress=False)
    buf = learner._query_buf
    assert buf.steps == 3 * family.max_episode_steps and len(buf) == 3 * family.max_episode_steps
    # each iteration's last step is an episode boundary, so n-step returns never join two iterations
    ends = [(i + 1) * family.max_episode_steps - 1 for i in range(3)]
    assert bool(buf.done[:, ends].all())
    fresh = MAMLDQN(family, **_tiny(iterations=3, eval_every=0))
    fresh.meta_train(train, progress=False)
    assert fresh._query_buf.steps == family.max_episode_steps  # without replay: this iteration's only


def test_safeguard_keeps_the_adapted_parameters_only_where_the_support_loss_fell():
    net, params, target, support, _ = _setup()
    plain = adapt_tasks(net, params, support, InnerLoop(lr=4.0, steps=3), target=target)  # overshoots on most tasks
    guarded = adapt_tasks(net, params, support, InnerLoop(lr=4.0, steps=3, safeguard=True), target=target)
    kept = 0
    for i in range(T):
        before = td_loss(net, params, support.row(i), target=target)
        after = td_loss(net, {k: v[i] for k, v in plain.items()}, support.row(i), target=target)
        want = plain if after < before else {k: v.unsqueeze(0).expand(T, *v.shape) for k, v in params.items()}
        kept += int(after < before)
        for k in params:
            assert torch.allclose(guarded[k][i], want[k][i])
    assert 0 < kept < T  # both branches exercised
    # so 3 guarded steps are not 1 then 2 more: the evaluation adapts every k from the prior
    from metadqn.adapters import GradientAdapter, SupportSpec
    from metadqn.td import TDLoss
    make = lambda guard: GradientAdapter("m", net, params, inner=InnerLoop(lr=4.0, steps=3, safeguard=guard),  # noqa: E731
                                         td=TDLoss(), support=SupportSpec())
    assert make(False).resumable and not make(True).resumable
