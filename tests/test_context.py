"""Context MAML on a model loss: its meta-gradient against an explicit loop, what adapts and
what does not, the learned step sizes past the trained K, resume, and a short learning run."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import metadqn
from metadqn.adapters import ContextModelAdapter, EncoderAdapter, ModelHead, SetEncoder, SupportSpec
from metadqn.families import make_family, with_time
from metadqn.learner import MAMLDQN
from metadqn.meta.iteration import outer_losses
from metadqn.nets import NetSpec, build_qnet, init_params
from metadqn.replay import Batch, Query
from metadqn.runlog import read_metrics
from metadqn.td import TDLoss, td_loss

T, B, OBS, A, D, K = 4, 10, 3, 4, 5, 3


def _setup(first_order=False, reward_model="joint", members=1, film=False):
    torch.manual_seed(0)
    net = build_qnet(NetSpec(hidden=(12,), activation="tanh", context=D, film=film), (OBS,), A).double()
    model = ModelHead((OBS,), A, D, (9,), reward_model, members=members)
    params = {**init_params(net, 0), **model.init_params(1)}
    params = {k: (v.double() + (0.1 if k == "context" else 0.0)).requires_grad_() for k, v in params.items()}
    target = {k: v.detach() + 0.01 for k, v in params.items()}
    lrs = torch.full((K, D), 0.7, dtype=torch.float64).requires_grad_()
    adapter = ContextModelAdapter("context", net, model, params, step_sizes=lrs, td=TDLoss(), support=SupportSpec(),
                                  obs_weight=0.5, model_weight=0.3, first_order=first_order)
    f = dict(dtype=torch.float64)

    def batch():
        return Batch(torch.randn(T, B, OBS, **f), torch.randint(0, A, (T, B)), torch.randn(T, B, **f),
                     torch.randn(T, B, OBS, **f), torch.rand(T, B, **f))
    return net, model, params, target, lrs, adapter, batch(), batch()


def _model_loss(model, params, c, b):
    """The mean over the model's members of each one's error."""
    total = 0.0
    for e in range(model.members):
        r, d = model.predict(params, b.obs, b.action, c, b.next_obs, member=e)
        total = total + ((r - b.returns) ** 2).mean() + 0.5 * ((d - (b.next_obs - b.obs)) ** 2).mean()
    return total / model.members


@pytest.mark.parametrize("reward_model,members,n_step,film", [("joint", 1, 1, False), ("next", 1, 1, False),
                                                           ("joint", 3, 1, False), ("next", 2, 1, False),
                                                           ("joint", 1, 3, False), ("next", 2, 3, False),
                                                           ("next", 1, 1, True)])
def test_context_meta_gradient_equals_explicit_loop(reward_model, members, n_step, film):
    """n_step 3: the outer TD loss reads the n-step part of a Query and the model loss the
    1-step part (here other random transitions, so that mixing them up shows). film: the
    adapted context also modulates the Q-network's hidden layer."""
    net, model, params, target, lrs, adapter, support, query = _setup(reward_model=reward_model, members=members,
                                                                      film=film)
    gen, f = torch.Generator().manual_seed(9), dict(dtype=torch.float64)
    steps_long = Batch(torch.randn(T, B, OBS, generator=gen, **f), torch.randint(0, A, (T, B), generator=gen),
                       torch.randn(T, B, generator=gen, **f), torch.randn(T, B, OBS, generator=gen, **f),
                       torch.rand(T, B, generator=gen, **f)) if n_step > 1 else query
    data = Query(query, steps_long) if n_step > 1 else query
    got = torch.autograd.grad(outer_losses(adapter, support, data, steps=K + 1, target=target).mean(),
                              [*params.values(), lrs])
    total = 0.0
    for i in range(T):
        c = params["context"]
        for step in range(K + 1):  # one step past K reuses the last step size (it lowers the loss here)
            (g,) = torch.autograd.grad(_model_loss(model, params, c, support.row(i)), [c], create_graph=True)
            c = c - lrs[min(step, K - 1)] * g
        q = query.row(i)
        total = total + td_loss(net, {**params, "context": c}, q, target={**target, "context": c.detach()}) \
            + 0.3 * _model_loss(model, params, c, steps_long.row(i))
    want = torch.autograd.grad(total / T, [*params.values(), lrs])
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-6)


@pytest.mark.parametrize("reward_model,members,obs_shape,newest",
                         [("joint", 1, (OBS,), False), ("next", 2, (OBS,), False), ("joint", 2, (5, OBS + 1), True),
                          ("next", 1, (5, OBS + 1), False)])
def test_the_inner_loops_explicit_context_gradient_equals_autograd(reward_model, members, obs_shape, newest):
    """The model head's hand-written backward (what every inner step uses) against
    torch.func.grad of its loss, for one context and vmapped over candidate contexts."""
    torch.manual_seed(3)
    model = ModelHead(obs_shape, A, D, (9, 7), reward_model, members=members, newest=newest).double()
    params = {k: v.double() for k, v in model.init_params(2).items()}
    f = dict(dtype=torch.float64)
    b = Batch(torch.randn(B, *obs_shape, **f), torch.randint(0, A, (B,)), torch.randn(B, **f),
              torch.randn(B, *obs_shape, **f), torch.rand(B, **f))
    cs = torch.randn(6, D, **f)
    value, g = model.loss_and_context_grad(params, cs[0], b, 0.4)
    assert torch.allclose(value, model.loss(params, cs[0], b, 0.4), rtol=1e-12)
    want = torch.func.grad(lambda c: model.loss(params, c, b, 0.4))(cs[0])
    assert torch.allclose(g, want, rtol=1e-9, atol=1e-12) and want.abs().max() > 1e-3
    got = torch.func.vmap(lambda c: model.loss_and_context_grad(params, c, b, 0.4)[1])(cs)
    assert torch.allclose(got, torch.func.vmap(torch.func.grad(lambda c: model.loss(params, c, b, 0.4)))(cs),
                          rtol=1e-9, atol=1e-12)


def test_without_the_observation_term_a_separate_reward_model_is_the_whole_loss_and_dynamics_are_not_run():
    """model_obs_weight=0 with reward_model="next": the loss and the inner loop's gradient are the
    reward MLP's alone (the dynamics MLP is skipped, so its parameters get no gradient at all)."""
    torch.manual_seed(4)
    model = ModelHead((OBS,), A, D, (9, 7), "next", members=2).double()
    params = {k: v.double().requires_grad_() for k, v in model.init_params(5).items()}
    f = dict(dtype=torch.float64)
    b = Batch(torch.randn(B, OBS, **f), torch.randint(0, A, (B,)), torch.randn(B, **f), torch.randn(B, OBS, **f),
              torch.rand(B, **f))
    c = torch.randn(D, **f)

    def reward_only(context):
        errs = [(model.predict(params, b.obs, b.action, context, b.next_obs, member=e)[0] - b.returns).square().mean()
                for e in range(2)]
        return sum(errs) / 2
    value, g = model.loss_and_context_grad(params, c, b, 0.0)
    assert torch.allclose(value, reward_only(c), rtol=1e-12) and value > 0
    assert torch.allclose(g, torch.func.grad(reward_only)(c), rtol=1e-9, atol=1e-12)
    names = sorted(params)
    grads = torch.autograd.grad(model.loss(params, c, b, 0.0), [params[k] for k in names], allow_unused=True)
    unused = {k for k, gr in zip(names, grads) if gr is None}
    assert unused == {k for k in names if k.startswith("model.layers")}  # member 0 and member 1's dynamics


def test_only_the_context_adapts_and_first_order_drops_second_derivatives():
    _, _, params, target, lrs, adapter, support, query = _setup()
    state = adapter.adapt(adapter.prior(), support.row(0), 2)
    assert set(state) == {"context"} and not torch.allclose(state["context"], params["context"])
    assert torch.equal(adapter.adapt(adapter.prior(), support.row(0), 0)["context"], params["context"])
    first = _setup(first_order=True)[5]
    g2 = torch.autograd.grad(outer_losses(adapter, support, query, steps=2, target=target).mean(), [lrs])[0]
    g1 = torch.autograd.grad(outer_losses(first, support, query, steps=2, target=target).mean(),
                             [first.step_sizes])[0]
    assert not torch.allclose(g1, g2)  # the step sizes still learn first order, through c' itself


def test_next_reward_model_reads_the_observed_next_observation_and_dynamics_do_not():
    model = ModelHead((OBS,), A, D, (9,), "next")
    params = model.init_params(0)
    assert any(k.startswith("model.reward.") for k in params)
    obs, act, c = torch.randn(6, OBS), torch.randint(0, A, (6,)), torch.randn(D)
    r1, d1 = model.predict(params, obs, act, c, torch.zeros(6, OBS))
    r2, d2 = model.predict(params, obs, act, c, torch.ones(6, OBS))
    assert not torch.allclose(r1, r2) and torch.equal(d1, d2)
    with pytest.raises(ValueError, match="pass next_obs"):
        model.predict(params, obs, act, c)
    with pytest.raises(ValueError, match="reward_model"):
        ModelHead((OBS,), A, D, (9,), "sas")


def test_a_model_ensemble_fits_each_member_on_its_own_and_one_member_is_the_single_head():
    single, three = ModelHead((OBS,), A, D, (9,)), ModelHead((OBS,), A, D, (9,), members=3)
    p1, p3 = single.init_params(0), three.init_params(0)
    assert set(p1) < set(p3) and {k for k in p3 if k not in p1} == {
        f"model.layers_{e}.{i}.{w}" for e in (1, 2) for i in (0, 1) for w in ("weight", "bias")}
    assert all(torch.equal(p1[k], p3[k]) for k in p1)  # member 0 is initialized as the single head was
    assert not torch.equal(p3["model.layers.0.weight"], p3["model.layers_1.0.weight"])
    b = Batch(torch.randn(6, OBS), torch.randint(0, A, (6,)), torch.randn(6), torch.randn(6, OBS), torch.zeros(6))
    c = torch.randn(D)
    errors = []
    for e in range(3):
        r, d = three.predict(p3, b.obs, b.action, c, b.next_obs, member=e)
        errors.append(((r - b.returns) ** 2).mean() + 0.5 * ((d - (b.next_obs - b.obs)) ** 2).mean())
    assert torch.allclose(three.loss(p3, c, b, 0.5), sum(errors) / 3)   # each member's error, averaged
    r_mean, _ = three.predict(p3, b.obs, b.action, c, b.next_obs)
    assert torch.allclose(r_mean, torch.stack([three.predict(p3, b.obs, b.action, c, b.next_obs, member=e)[0]
                                               for e in range(3)]).mean(0))
    with pytest.raises(ValueError, match="model_members"):
        metadqn.MAMLDQN("bandit", algo="context", model_members=0)


def test_task_inference_loss_adds_the_probe_error_of_the_adapted_context():
    net, model, params, target, lrs, adapter, support, query = _setup()
    params["probe.weight"] = torch.randn(2, D, dtype=torch.float64, requires_grad=True)
    params["probe.bias"] = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    y = torch.rand(T, 2, dtype=torch.float64)
    plain = outer_losses(adapter, support, query, steps=2, target=target)
    got = outer_losses(adapter, support, query, steps=2, target=target, task=y, task_weight=3.0)
    for i in range(T):
        c = adapter.adapt(adapter.prior(), support.row(i), 2)["context"]
        probe = params["probe.weight"] @ c + params["probe.bias"]
        assert torch.allclose(got[i], plain[i] + 3.0 * ((probe - y[i]) ** 2).mean())
    (g,) = torch.autograd.grad(got.sum(), [lrs])  # the step sizes learn from it through c'
    assert not torch.allclose(g, torch.autograd.grad(plain.sum(), [lrs])[0])


def test_task_vector_scales_inferable_parameters_and_skips_layout_seeds():
    fam = metadqn.make_family("gridnav", size=5, obstacles=2)
    task = fam.task(goal=[4, 1], layout=7)
    assert fam.task_vector(task).tolist() == [1.0, 0.25]
    bandit = metadqn.make_family("bandit")
    assert bandit.task_vector(bandit.default_task()).shape == (bandit.action_space.n,)


def test_task_inference_loss_needs_a_context_method():
    with pytest.raises(ValueError, match="task_loss_weight"):
        metadqn.MetaConfig(algo="maml", task_loss_weight=1.0)


def _tiny(**kw):
    base = dict(algo="context", iterations=4, envs_per_task=2, query_batch=16, eval_every=2, eval_runs=1,
                eval_episodes=1, checkpoint_every=2, net={"hidden": [16], "context": 4}, model_hidden=[8], seed=3)
    return {**base, **kw}


def test_context_run_resumes_bit_exactly_and_saves_its_model_and_step_sizes(tmp_path):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    extras = dict(iterations=6, task_loss_weight=0.5, reward_model="next", context_starts=2)
    full = MAMLDQN(family, **_tiny(**extras)).meta_train(train, test_tasks=test, out_dir=tmp_path / "full",
                                                         progress=False)
    part = MAMLDQN(family, **_tiny(**extras))
    part.meta_train(train, iterations=4, test_tasks=test, out_dir=tmp_path / "part", progress=False)
    resumed = MAMLDQN.load(tmp_path / "part")
    assert resumed.config.outer_steps == 8 and resumed.config.support_batch == 0  # the algorithm's defaults
    resumed.meta_train(out_dir=tmp_path / "part", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "part")) == strip(read_metrics(tmp_path / "full"))
    assert any(k.startswith("model.reward.") for k in resumed.params) and "probe.weight" in resumed.params
    assert not torch.equal(resumed.params["probe.weight"], MAMLDQN(family, **_tiny(**extras)).params["probe.weight"])
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k])
    assert torch.equal(full.inner_lrs["context"], resumed.inner_lrs["context"])
    adapted = resumed.adapt(test[0], steps=3)
    # gridnav's recommended context_pool pools both starts: the Q-network's context and the model's end
    assert set(adapted) == {"context", "end"} and adapted["context"].shape == adapted["end"].shape == (4,)


def test_support_sets_of_varying_size_cycle_count_their_env_steps_and_resume_bit_exactly(tmp_path):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    extras = dict(algo="encoder", encoder_pooling="bayes", iterations=6, support_episodes_max=3)
    full = MAMLDQN(family, **_tiny(**extras)).meta_train(train, test_tasks=test, out_dir=tmp_path / "full",
                                                         progress=False)
    rows = read_metrics(tmp_path / "full")
    assert [r["support_episodes"] for r in rows] == [1, 2, 3, 1, 2, 3]
    episodes = [2, 3, 4, 2, 3, 4]  # support + one query episode per instance, 4 tasks x 2 instances
    want = [sum(episodes[:i + 1]) * 4 * 2 * family.max_episode_steps for i in range(6)]
    assert [r["env_steps"] for r in rows] == want and full.env_steps == want[-1]
    part = MAMLDQN(family, **_tiny(**extras))
    part.meta_train(train, iterations=4, test_tasks=test, out_dir=tmp_path / "part", progress=False)
    resumed = MAMLDQN.load(tmp_path / "part")  # stops mid-cycle: the next support set has 2 episodes
    assert resumed.env_steps == want[3]
    resumed.meta_train(out_dir=tmp_path / "part", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "part")) == strip(rows)
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k])
    with pytest.raises(ValueError, match="support_episodes_max must be 0"):
        metadqn.MetaConfig(support_episodes=2, support_episodes_max=1)


@pytest.mark.parametrize("algo", ["context", "encoder"])
def test_a_run_saved_before_the_model_and_encoder_layers_were_renamed_still_loads(tmp_path, algo):
    from metadqn.checkpoint import load_checkpoint, save_checkpoint
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    # the only pooling then, and no refining context steps
    pooling = {"encoder_pooling": "mean+max", "inner_steps": 0} if algo == "encoder" else {}
    run = MAMLDQN(family, **_tiny(algo=algo, iterations=2, eval_every=0, **pooling)).meta_train(
        train, test_tasks=test, out_dir=tmp_path / "run", progress=False)
    tensors, meta = load_checkpoint(tmp_path / "run")
    meta["config"].pop("encoder_pooling")
    old = {k.replace("model.layers.", "model.").replace("encoder.layers.", "encoder."): v
           for k, v in tensors.items()}  # the earlier names
    assert any(k.startswith("params/model.0.") for k in old)
    assert (algo == "encoder") == any(k.startswith("params/encoder.0.") for k in old)
    if algo == "encoder":  # the encoder ignored inner_steps then, and runs stored MAML's default of 1
        assert not any(k.startswith("inner_lr/") for k in old)
        meta["config"]["inner_steps"] = 1
    save_checkpoint(tmp_path / "run" / "checkpoint.safetensors", old, meta)
    loaded = MAMLDQN.load(tmp_path / "run")
    assert loaded.config.inner_steps == run.config.inner_steps
    assert loaded.config.encoder_pooling == "mean+max"  # the config as stored, not gridnav's recommended bayes
    for k, v in run.params.items():
        assert torch.equal(loaded.params[k], v)


def _encoder_setup(pooling="mean+max"):
    torch.manual_seed(1)
    net = build_qnet(NetSpec(hidden=(12,), activation="tanh", context=D), (OBS,), A).double()
    model = ModelHead((OBS,), A, D, (9,))
    encoder = SetEncoder((OBS,), A, D, (7,), pooling=pooling, latent=5, measurements=2)
    params = {**init_params(net, 0), **model.init_params(1), **encoder.init_params(2)}
    params = {k: v.double().requires_grad_() for k, v in params.items()}
    adapter = EncoderAdapter("encoder", net, model, encoder, params, td=TDLoss(), support=SupportSpec(batch=0),
                             obs_weight=0.5, model_weight=0.3)
    return net, model, encoder, params, adapter


@pytest.mark.parametrize("pooling", ["mean+max", "bayes"])
def test_encoder_is_permutation_invariant_ignores_step_counts_and_its_meta_gradient_equals_a_loop(pooling):
    net, model, encoder, params, adapter = _encoder_setup(pooling)
    *_, support, query = _setup()
    one = support.row(0)
    perm = torch.randperm(B)
    shuffled = Batch(*(x[perm] for x in one))
    code = adapter.adapt(adapter.prior(), one, 0)["context"]
    assert torch.allclose(code, adapter.adapt(adapter.prior(), shuffled, 3)["context"])
    assert not torch.allclose(code, adapter.adapt(adapter.prior(), support.row(1), 0)["context"])
    from metadqn.adaptation import adapt_batch
    assert torch.allclose(adapt_batch(adapter, support, 0)["context"][0], code)  # k = 0 already reads the data
    target = {k: v.detach() + 0.01 for k, v in params.items()}
    got = torch.autograd.grad(outer_losses(adapter, support, query, steps=1, target=target).mean(),
                              list(params.values()), allow_unused=True)
    total = 0.0
    for i in range(T):
        c = encoder.encode(params, support.row(i))
        q = query.row(i)
        total = total + td_loss(net, {**params, "context": c}, q, target={**target, "context": c.detach()}) \
            + 0.3 * _model_loss(model, params, c, q)
    want = torch.autograd.grad(total / T, list(params.values()), allow_unused=True)
    for name, a, b in zip(params, got, want):
        if name == "context":  # c0 is unused: the encoder always reads the data
            assert a is None and b is None
        else:
            assert torch.allclose(a, b, atol=1e-9, rtol=1e-6), name


def test_bayes_pooling_is_the_gaussian_posterior_of_the_measurements_and_evidence_adds_up():
    *_, encoder, params, _ = _encoder_setup("bayes")
    *_, support, _ = _setup()
    one = support.row(0)
    L, m = encoder.latent, encoder.measurements
    # φ's outputs by hand, then Bayesian linear regression written out with an explicit inverse
    obs, nxt = one.obs.reshape(B, -1), one.next_obs.reshape(B, -1)
    x = torch.cat((obs, F.one_hot(one.action, A).double(), one.returns[:, None], nxt - obs,
                   (one.discount > 0).double()[:, None]), 1)
    h = torch.relu(x @ params["encoder.layers.0.weight"].T + params["encoder.layers.0.bias"])
    out = (h @ params["encoder.measure.weight"].T + params["encoder.measure.bias"]).reshape(B * m, L + 2)
    w, y, lam = out[:, :L], out[:, L], F.softplus(out[:, L + 1])
    p0 = params["encoder.prior_log_precision"].exp()
    precision = torch.diag(p0) + sum(lam[j] * torch.outer(w[j], w[j]) for j in range(B * m))
    cov = torch.linalg.inv(precision)
    mean = cov @ (p0 * params["encoder.prior_mean"] + sum(lam[j] * y[j] * w[j] for j in range(B * m)))
    got = encoder._posterior(params, h)
    assert torch.allclose(got[:L], mean, atol=1e-10) and torch.allclose(got[L:], 0.5 * cov.diagonal().log(), atol=1e-10)
    # a nearly flat prior: the same transitions seen twice keep the mean and halve the variance
    # (mean pooling could not tell the two sets apart)
    flat = {**params, "encoder.prior_log_precision": torch.full((L,), -30.0, dtype=torch.float64)}
    twice = torch.cat((h, h))
    a, b = encoder._posterior(flat, h), encoder._posterior(flat, twice)
    assert torch.allclose(a[:L], b[:L], atol=1e-6)
    assert torch.allclose(b[L:] - a[L:], torch.full((L,), -0.5 * math.log(2.0), dtype=torch.float64), atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        SetEncoder((OBS,), A, D, (7,), pooling="sum")
    with pytest.raises(ValueError, match="encoder_pooling"):
        metadqn.MetaConfig(algo="encoder", encoder_pooling="attention")


def test_online_adaptation_that_never_fires_in_the_episode_equals_frozen_adaptation():
    from metadqn.adaptation import adaptation_curve, online_curve
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 3, seed=0)
    learner = MAMLDQN(family, **_tiny(iterations=3, eval_every=0, checkpoint_every=0))
    learner.meta_train(train, progress=False)
    adapter, h, view = learner.adapter(), family.max_episode_steps, learner.family  # gridnav's: with t / H
    frozen = adaptation_curve(adapter, view, test, runs_per_task=2, episodes=1, steps=(5,), eval_episodes=1,
                              seed=4)[5]
    late, _ = online_curve(adapter, view, test, runs_per_task=2, episodes=1, steps=5, every=h, seed=4)
    assert torch.equal(late, frozen)
    live, ms = online_curve(adapter, view, test, runs_per_task=2, episodes=0, steps=5, every=1, seed=4)
    assert live.shape == (3, 2) and ms > 0
    # the protocol's online section: the step count it was asked for, both budgets, the online limit
    result = metadqn.evaluate(learner, test, baselines=[], config=metadqn.EvalConfig(
        seeds=2, budgets=(1,), steps=(0,), eval_episodes=1, online=True, online_steps=2, online_every=h))
    entry = result["online"]["methods"]["context"]
    assert entry["steps"] == 2 and set(entry["nr"]) == {"0", "1"} and set(result["online"]["limit"]) == {"0", "1"}
    with pytest.raises(ValueError, match="online_steps >= 0"):
        metadqn.EvalConfig(online=True, online_steps=-1)


def test_multi_start_keeps_the_end_point_with_the_lowest_support_loss():
    net, model, params, target, lrs, adapter, support, query = _setup()
    params["context_starts"] = (torch.randn(3, D, dtype=torch.float64) * 2).requires_grad_()
    one = support.row(1)
    got = adapter.adapt(adapter.prior(), one, 2)["context"]
    ends = [adapter._descend(c, one, 2) for c in [params["context"], *params["context_starts"]]]
    losses = [float(_model_loss(model, params, c, one).detach()) for c in ends]
    assert torch.allclose(got, ends[losses.index(min(losses))])
    assert torch.equal(adapter.adapt(adapter.prior(), one, 0)["context"], params["context"])  # no data, no choice
    grads = torch.autograd.grad(outer_losses(adapter, support, query, steps=2, target=target).mean(),
                                [params["context_starts"]])
    assert torch.isfinite(grads[0]).all()
    # the meta-gradient is the one through the kept end's own descent (the choice carries none)
    wrt = [*params.values(), lrs]
    kept = ends[losses.index(min(losses))]
    want = torch.autograd.grad(adapter.outer_loss({"context": kept}, query.row(1), target=target), wrt,
                               allow_unused=True)
    got = torch.autograd.grad(adapter.outer_loss(adapter.adapt(adapter.prior(), one, 2), query.row(1), target=target),
                              wrt, allow_unused=True)
    for a, b, p in zip(got, want, wrt):
        assert torch.allclose(torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if b is None else b,
                              atol=1e-10)


def test_warm_online_readaptation_keeps_the_best_fitting_of_the_previous_end_and_every_start():
    net, model, params, target, lrs, adapter, support, query = _setup()
    one = support.row(1)
    previous = {"context": torch.randn(D, dtype=torch.float64) * 3}
    for starts in (None, (torch.randn(3, D, dtype=torch.float64) * 2).requires_grad_()):
        if starts is not None:
            params["context_starts"] = starts
        candidates = [previous["context"], params["context"], *([] if starts is None else starts)]
        ends = [adapter._descend(c, one, 2) for c in candidates]
        losses = [float(_model_loss(model, params, c, one).detach()) for c in ends]
        got = adapter.readapt(previous, one, 2)["context"]
        assert torch.allclose(got, ends[losses.index(min(losses))])
        assert float(_model_loss(model, params, got, one).detach()) <= min(losses[1:])  # never worse than a cold start


def test_warm_online_evaluation_is_named_in_the_json_and_report_and_changes_only_online_numbers(tmp_path):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 3, seed=0)
    learner = MAMLDQN(family, **_tiny(iterations=3, eval_every=0, checkpoint_every=0, context_starts=3))
    learner.meta_train(train, progress=False)
    common = dict(seeds=2, budgets=(1,), steps=(2,), eval_episodes=1, online=True, online_budgets=(1,),
                  online_steps=2)
    cold = metadqn.evaluate(learner, test, baselines=[], config=metadqn.EvalConfig(**common))
    warm = metadqn.evaluate(learner, test, baselines=[], config=metadqn.EvalConfig(**common, online_warm=True))
    assert cold["online"]["warm"] is False and warm["online"]["warm"] is True
    assert warm["methods"] == cold["methods"]  # frozen adaptation is untouched
    assert set(warm["online"]["methods"]["context"]["nr"]) == {"1"}
    from metadqn.report import write_report
    assert "from the last one's end" in write_report(warm, tmp_path / "warm").read_text()
    assert "from the last one's end" not in write_report(cold, tmp_path / "cold").read_text()


@pytest.mark.parametrize("starts", [1, 4])
def test_every_k_is_adapted_from_the_prior_not_from_the_previous_k(starts):
    # several starts choose anew at each k; with one, step i uses α_i, so k = 6 is not
    # "the k = 1 state and 5 more steps" (those would take α_0 … α_4 again)
    from metadqn.adaptation import adapt_instances
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 3, seed=0)
    learner = MAMLDQN(family, **_tiny(iterations=2, eval_every=0, checkpoint_every=0, context_starts=starts))
    learner.meta_train(train, progress=False)
    kw = dict(runs_per_task=2, episodes=1, seed=4)
    together = adapt_instances(learner.adapter(), learner.family, test, steps=(1, 6), **kw)[6]["context"]
    alone = adapt_instances(learner.adapter(), learner.family, test, steps=(6,), **kw)[6]["context"]
    assert not learner.adapter().resumable and torch.equal(together, alone)


def test_steps_past_the_trained_k_backtrack_so_more_steps_never_raise_the_support_loss():
    net, model, params, target, lrs, adapter, support, query = _setup()
    big = ContextModelAdapter("context", net, model, params, step_sizes=torch.full((K, D), 40.0, dtype=torch.float64),
                              td=TDLoss(), support=SupportSpec(), obs_weight=0.5)
    rose = 0
    with torch.no_grad():
        for i in range(T):
            one = support.row(i)
            loss = [float(_model_loss(model, params, big.adapt(big.prior(), one, k)["context"], one))
                    for k in range(K, K + 8)]
            assert all(b <= a for a, b in zip(loss, loss[1:]))  # past K: never up
            c = big.adapt(big.prior(), one, K)["context"]  # repeating α_K blindly is what it replaces
            plain = [loss[0]]
            for _ in range(7):
                c = c - 40.0 * torch.func.grad(lambda x: _model_loss(model, params, x, one))(c)
                plain.append(float(_model_loss(model, params, c, one)))
            rose += any(b > a for a, b in zip(plain, plain[1:]))
    assert rose >= 2
    # where each step past K lowers the loss, it is the plain step of α_K (the step sizes of _setup)
    one = support.row(0)
    c = adapter.adapt(adapter.prior(), one, K)["context"]
    for _ in range(4):
        (g,) = torch.autograd.grad(_model_loss(model, params, c, one), [c])
        c = c - lrs[-1] * g
    assert torch.allclose(adapter.adapt(adapter.prior(), one, K + 4)["context"], c)


def test_encoder_refinement_steps_start_from_the_code_at_every_k():
    net, model, encoder, params, _ = _encoder_setup()
    lrs = torch.full((2, D), 0.3, dtype=torch.float64)
    adapter = EncoderAdapter("encoder", net, model, encoder, params, td=TDLoss(), support=SupportSpec(batch=0),
                             step_sizes=lrs, obs_weight=0.5)
    *_, support, _ = _setup()
    one = support.row(2)
    c = encoder.encode(params, one)
    for _ in range(3):  # the third step reuses the last learned step size (it lowers the loss here)
        (g,) = torch.autograd.grad(_model_loss(model, params, c, one), [c])
        c = c - 0.3 * g
    assert torch.allclose(adapter.adapt(adapter.prior(), one, 3)["context"], c)
    assert torch.allclose(adapter.adapt(adapter.prior(), one, 0)["context"], encoder.encode(params, one))
    from metadqn.adaptation import adapt_batch
    assert torch.allclose(adapt_batch(adapter, support, 3)["context"][2], c)


def test_encoder_with_learned_starts_keeps_the_best_fitting_refinement_of_the_code_and_each_start():
    net, model, encoder, params, _ = _encoder_setup()
    params["context_starts"] = (torch.randn(3, D, dtype=torch.float64) * 2).requires_grad_()
    adapter = EncoderAdapter("encoder", net, model, encoder, params, td=TDLoss(), support=SupportSpec(batch=0),
                             step_sizes=torch.full((2, D), 0.3, dtype=torch.float64), obs_weight=0.5)
    *_, support, _ = _setup()
    picks = set()
    for i in range(T):
        one = support.row(i)
        ends = [adapter._descend(c, one, 2) for c in [encoder.encode(params, one), *params["context_starts"]]]
        losses = [float(_model_loss(model, params, c, one).detach()) for c in ends]
        picks.add(losses.index(min(losses)))
        assert torch.allclose(adapter.adapt(adapter.prior(), one, 2)["context"], ends[losses.index(min(losses))])
    assert len(picks) > 1  # the data decide which start wins
    assert torch.allclose(adapter.adapt(adapter.prior(), support.row(0), 0)["context"],
                          encoder.encode(params, support.row(0)))  # no refinement, no choice: the code
    with pytest.raises(ValueError, match="context_starts"):
        metadqn.MetaConfig(algo="maml", context_starts=4)
    with pytest.raises(ValueError, match="refinement"):
        metadqn.MetaConfig(algo="encoder", context_starts=4)  # inner_steps 0: nothing would start from them


def test_a_familys_recommended_settings_fill_only_what_the_user_leaves_unset(tmp_path, capsys):
    from metadqn.cli import main
    from metadqn.meta.config import FAMILY_DEFAULTS, MetaConfig
    preset = FAMILY_DEFAULTS["cartpole-physics"]["context"]
    assert MAMLDQN("cartpole-physics").config.outer_steps == preset["outer_steps"]
    mine = MAMLDQN("cartpole-physics", outer_steps=2, eps_query=1.0)
    assert (mine.config.outer_steps, mine.config.eps_query, mine.config.query_replay) == (2, 1.0, preset["query_replay"])
    assert MAMLDQN("cartpole-physics", algo="maml").config.outer_steps == 1     # recommended for context only
    assert MAMLDQN("gridnav").config.outer_steps == 8                           # no preset: the algorithm's default
    assert MAMLDQN("cartpole-physics", config=MetaConfig()).config.outer_steps == 8  # a config is taken as it is
    # gridnav's encoder trains on 1-3 support episodes; a user's own support_episodes of 3+ drops that
    assert MAMLDQN("gridnav", algo="encoder").config.support_episodes_max == 3
    assert MAMLDQN("gridnav", algo="encoder", support_episodes=5).config.support_episodes_max == 0
    assert main(["train", "--family", "gridnav", "--algo", "encoder", "--set", "support_episodes=x", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "config.support_episodes: expected an integer, got 'x'" in capsys.readouterr().err
    assert main(["train", "--family", "cartpole-physics", "--iterations", "1", "--set", "outer_steps=1",
                 "--set", "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "eval_every=0", "--quiet",
                 "--out", str(tmp_path / "cp")]) == 0
    printed = capsys.readouterr().out
    assert "recommended for cartpole-physics: query_replay=4000, eps_query=0.3, envs_per_task=2" in printed
    saved = json.loads((tmp_path / "cp" / "config.json").read_text())["config"]
    assert (saved["outer_steps"], saved["query_replay"], saved["n_train_tasks"], saved["n_step"]) == (1, 4000, 2, 3)


def test_a_nested_recommendation_keeps_the_users_other_nested_settings(tmp_path, capsys, monkeypatch):
    """A recommended ``net.film`` fills only that key of ``net``: a user's ``net.hidden`` keeps it, in
    Python, on the command line and in a sweep's trials; the user's own ``net.film`` wins."""
    from metadqn.cli import main
    from metadqn.meta import config as meta_config
    from metadqn.scale.sweep import trial_values
    monkeypatch.setitem(meta_config.FAMILY_DEFAULTS, "bandit", {"context": {"net": {"film": True}, "outer_steps": 2}})
    monkeypatch.delitem(meta_config.FAMILY_ALGOS, "bandit")  # context MAML, the algorithm recommended for here
    cfg = MAMLDQN("bandit", net={"hidden": [16]}).config
    assert (cfg.net.film, cfg.net.hidden, cfg.net.context, cfg.outer_steps) == (True, (16,), 8, 2)
    assert MAMLDQN("bandit", net={"film": False}).config.net.film is False
    assert trial_values("bandit", {}, {"net.hidden": [16]})["net"] == {"film": True, "hidden": [16]}
    assert main(["train", "--family", "bandit", "--iterations", "1", "--set", "net.hidden=[16]", "--set",
                 "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "eval_every=0", "--quiet",
                 "--out", str(tmp_path / "b")]) == 0
    assert "recommended for bandit: net.film=True, outer_steps=2" in capsys.readouterr().out
    saved = json.loads((tmp_path / "b" / "config.json").read_text())["config"]
    assert (saved["net"]["film"], saved["net"]["hidden"], saved["outer_steps"]) == (True, [16], 2)


def test_gridnav_with_obstacles_is_recommended_many_more_training_maps(tmp_path, capsys):
    """Every task of gridnav with obstacles draws its own layout, so held-out tasks are new maps: 40
    training tasks gave held-out NR -0.06, 640 gave 0.74 (RESULTS.md, twentieth session). Its options
    pick the recommendation, in Python, on the command line and in a sweep's trials."""
    from metadqn.cli import main
    from metadqn.meta.config import FAMILY_DEFAULTS, MetaConfig
    from metadqn.scale.sweep import trial_values
    walls = make_family("gridnav", size=6, obstacles=4)
    assert (walls.recommendation, make_family("gridnav").recommendation) == ("gridnav+obstacles", "gridnav")
    assert with_time(walls).recommendation == "gridnav+obstacles"
    cfg = MAMLDQN(walls).config
    assert (cfg.n_train_tasks, cfg.envs_per_task, cfg.context_starts, cfg.time_feature) == (640, 1, 8, True)
    assert MAMLDQN("gridnav").config.n_train_tasks == MetaConfig.n_train_tasks == 40   # no obstacles: unchanged
    assert MAMLDQN(walls, n_train_tasks=50).config.n_train_tasks == 50                 # the user's value wins
    assert MAMLDQN(walls, algo="encoder").config.n_train_tasks == 40                   # context only
    assert trial_values(walls, {}, {"seed": 1})["n_train_tasks"] == 640
    assert trial_values("gridnav+obstacles", {}, {}) == trial_values(walls, {}, {})
    assert main(["train", "--family", "gridnav", "--family-options", '{"size": 5, "obstacles": 3}', "--iterations", "1",
                 "--set", "n_train_tasks=3", "--set", "n_test_tasks=1", "--set", "eval_every=0", "--set",
                 "outer_steps=1", "--quiet", "--out", str(tmp_path / "walls")]) == 0
    printed = capsys.readouterr().out
    assert "recommended for gridnav+obstacles: context_starts=8" in printed and "envs_per_task=1" in printed
    saved = json.loads((tmp_path / "walls" / "config.json").read_text())["config"]
    assert (saved["n_train_tasks"], saved["envs_per_task"]) == (3, FAMILY_DEFAULTS["gridnav+obstacles"]["context"]
                                                                ["envs_per_task"])


@pytest.mark.parametrize("refine", [0, 2])
def test_warm_online_readaptation_of_the_encoder_reads_the_new_data(refine):
    net, model, encoder, params, _ = _encoder_setup("bayes")
    lrs = torch.full((refine, D), 0.3, dtype=torch.float64)
    adapter = EncoderAdapter("encoder", net, model, encoder, params, td=TDLoss(), support=SupportSpec(batch=0),
                             step_sizes=lrs, obs_weight=0.5)
    *_, support, _ = _setup()
    one = support.row(1)
    fresh = adapter.adapt(adapter.prior(), one, 3)["context"]  # the code of the data, refined (or not)
    far = {"context": torch.full((D,), 50.0, dtype=torch.float64)}  # an end that fits nothing
    assert torch.allclose(adapter.readapt(far, one, 3)["context"], fresh)
    close = {"context": fresh.detach() + 1e-3}  # an end that fits as well: the lower loss is kept
    got = adapter.readapt(close, one, 3)["context"]
    ends = [adapter._descend(c, one, 3 if refine else 0) for c in (close["context"], encoder.encode(params, one))]
    losses = [float(_model_loss(model, params, c, one).detach()) for c in ends]
    assert torch.allclose(got, ends[losses.index(min(losses))])
    fit = lambda c: float(_model_loss(model, params, c, one).detach())  # noqa: E731
    assert fit(got) <= fit(fresh) + 1e-12


def test_newest_context_obs_reads_only_the_current_step_of_a_window_while_the_q_network_reads_it_all():
    """context_obs='newest': the model head and the encoder see the newest step of a window
    observation (its features, not the trailing real-step flag), exactly as they would see an
    unwindowed observation; older steps change nothing there, but do change the Q-values."""
    W = 3
    flat_model, win_model = ModelHead((OBS,), A, D, (9,), "next"), ModelHead((W, OBS + 1), A, D, (9,), "next", newest=True)
    params = flat_model.init_params(0)
    assert {k: v.shape for k, v in win_model.init_params(0).items()} == {k: v.shape for k, v in params.items()}
    obs, nxt = torch.randn(6, W, OBS + 1), torch.randn(6, W, OBS + 1)
    act, c = torch.randint(0, A, (6,)), torch.randn(D)
    want = flat_model.predict(params, obs[:, -1, :OBS], act, c, nxt[:, -1, :OBS])
    got = win_model.predict(params, obs, act, c, nxt)
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    older = obs.clone()
    older[:, :-1] += 1.0
    older[:, -1, -1] += 1.0  # the flag of the newest step is not read either
    assert all(torch.equal(g, w) for g, w in zip(win_model.predict(params, older, act, c, nxt), want))
    batch = Batch(obs, act, torch.randn(6), nxt, torch.ones(6))
    flat = Batch(obs[:, -1, :OBS], act, batch.returns, nxt[:, -1, :OBS], batch.discount)
    assert torch.equal(win_model.loss(params, c, batch, 0.5), flat_model.loss(params, c, flat, 0.5))
    enc_flat = SetEncoder((OBS,), A, D, (8,), pooling="bayes", latent=3)
    enc_win = SetEncoder((W, OBS + 1), A, D, (8,), pooling="bayes", latent=3, newest=True)
    enc_params = enc_flat.init_params(2)
    assert torch.equal(enc_win.encode(enc_params, batch), enc_flat.encode(enc_params, flat))
    assert torch.equal(enc_win.encode(enc_params, batch._replace(obs=older)), enc_flat.encode(enc_params, flat))
    with pytest.raises(ValueError, match="newest step of window observations"):
        ModelHead((OBS,), A, D, (9,), newest=True)
    # end to end: a with_history family, the Q-network's first layer reads the whole window
    from metadqn.families import make_family, with_history
    family = with_history(make_family("gridnav", size=4), 4)
    learner = MAMLDQN(family, algo="encoder", context_obs="newest", iterations=1, n_train_tasks=2, envs_per_task=1,
                      eval_every=0, checkpoint_every=0, inner_steps=1, net=NetSpec(hidden=(16,)))
    assert learner.params["fcs.0.weight"].shape[1] == 4 * 3 + 8  # 4 steps x (row, col, flag) + the context
    assert learner.params["model.layers.0.weight"].shape[1] == 2 + 4 + 8  # (row, col), one-hot action, context
    assert learner.params["model.layers.2.weight"].shape[0] == 1 + 2  # r and the change of (row, col)
    assert learner.params["encoder.layers.0.weight"].shape[1] == 2 * 2 + 4 + 2  # s, s' - s: (row, col) only
    learner.meta_train(family.split(2, 2, seed=0)[0], progress=False)
    from metadqn.nets import q_values
    now = family.make_batched(family.sample_tasks(1, seed=0), 3, seed=0).reset()[0]  # [3, 4 steps, 3]
    earlier = now.clone()
    earlier[:, -2] = torch.tensor([0.0, 1.0, 1.0])  # the same position now, another one a step before
    assert not torch.allclose(q_values(learner.net, learner.params, now), q_values(learner.net, learner.params, earlier))
    with pytest.raises(ValueError, match="a with_history family"):
        MAMLDQN("gridnav", algo="context", context_obs="newest")
    with pytest.raises(ValueError, match="context_obs must be one of"):
        MAMLDQN("gridnav", algo="context", context_obs="last")
    with pytest.raises(ValueError, match="use algo 'context', 'encoder' or 'blr'"):
        MAMLDQN(family, algo="maml", context_obs="newest")


@pytest.mark.parametrize("kind", ["context", "encoder"])
def test_a_narrowed_choice_gives_the_same_outer_losses_and_meta_gradient_and_moves_with_theta(kind):
    from metadqn.adaptation import choose_batch
    if kind == "context":
        net, model, params, target, lrs, adapter, support, query = _setup()
    else:
        net, model, encoder, params, _ = _encoder_setup()
        lrs = torch.full((2, D), 0.3, dtype=torch.float64, requires_grad=True)
        adapter = EncoderAdapter("encoder", net, model, encoder, params, td=TDLoss(), support=SupportSpec(batch=0),
                                 step_sizes=lrs, obs_weight=0.5)
        *_, target, _, _, support, query = _setup()
    params["context_starts"] = (torch.randn(3, D, dtype=torch.float64) * 2).requires_grad_()
    wrt = [*params.values(), lrs]
    fresh = outer_losses(adapter, support, query, steps=2, target=target)
    fresh_grads = torch.autograd.grad(fresh.sum(), wrt, allow_unused=True)
    for keep in (1, 2):
        chosen = choose_batch(adapter.detached(), support, 2, keep=keep)
        assert set(chosen) == {"shortlist"} and chosen["shortlist"].shape == (T, keep, 4)
        reused = outer_losses(adapter, support, query, steps=2, target=target, chosen=chosen)
        assert torch.equal(fresh, reused)  # on the θ it was made with, the narrowed choice is the full one
        for a, b in zip(fresh_grads, torch.autograd.grad(reused.sum(), wrt, allow_unused=True)):
            assert (a is None and b is None) or torch.equal(a, b)
    first = chosen["shortlist"][:, 0].argmax(1)
    assert len(set(first.tolist())) > 1  # the data decide
    # the shortlist is the starts ranked by their ends' support loss, best first
    one = support.row(0)
    ends = [adapter._descend(c, one, 2) for c in adapter._fresh_starts(one)]
    order = sorted(range(4), key=lambda j: float(_model_loss(model, params, ends[j], one).detach()))
    assert chosen["shortlist"][0].argmax(1).tolist() == order[:2]
    # after θ moves, adapt re-chooses among the shortlist, from the moved starts (gradient flows in)
    with torch.no_grad():
        params["context_starts"].add_(0.3)
    short = chosen["shortlist"][0]
    starts = adapter._fresh_starts(one)
    ends = [adapter._descend(starts[int(j)], one, 2) for j in short.argmax(1)]
    losses = [float(_model_loss(model, params, c, one).detach()) for c in ends]
    assert torch.allclose(adapter.adapt({**adapter.prior(), "shortlist": short}, one, 2)["context"],
                          ends[losses.index(min(losses))])
    assert choose_batch(adapter, support, 0) == {} and choose_batch(adapter, support, 2, keep=4) == {}


@pytest.mark.parametrize("pool,kept", [(1, 2), (3, 3)])
def test_meta_training_ranks_the_starts_once_per_iteration_and_updates_choose_among_the_shortlist(monkeypatch, pool,
                                                                                                  kept):
    family = metadqn.make_family("gridnav", size=5)
    train, _ = family.split(4, 0, seed=0)
    sizes = []
    real = ContextModelAdapter._ends_and_losses
    monkeypatch.setattr(ContextModelAdapter, "_ends_and_losses",
                        lambda self, c, *a: sizes.append(c.shape[-2]) or real(self, c, *a))
    MAMLDQN(family, **_tiny(iterations=2, eval_every=0, checkpoint_every=0, context_starts=4, start_shortlist=2,
                            outer_steps=3, context_pool=pool)).meta_train(train, progress=False)
    # per iteration: one ranking of all 4 starts, then 2-way choices for the query collection and 3 updates
    # (a pool of 3 ends widens the shortlist to 3)
    assert sizes == [4, kept, kept, kept, kept] * 2
    with pytest.raises(ValueError, match="start_shortlist must be >= 1"):
        metadqn.MetaConfig(start_shortlist=0)


def _pooled_setup():
    net, model, params, target, lrs, adapter, support, query = _setup()
    params["context_starts"] = (torch.randn(4, D, dtype=torch.float64) * 2).requires_grad_()
    params["pool.spread"] = (torch.eye(D, dtype=torch.float64) + 0.1 * torch.randn(D, D, dtype=torch.float64)
                             ).requires_grad_()
    params["pool.log_tau"] = torch.tensor(math.log(0.05), dtype=torch.float64).requires_grad_()
    pooled = ContextModelAdapter("context", net, model, params, step_sizes=lrs, td=TDLoss(), support=SupportSpec(),
                                 obs_weight=0.5, model_weight=0.3, pool=3)
    return params, target, lrs, model, pooled, support, query


def _pool_by_hand(params, model, ends, one):
    """The Q-network's context of ``context_pool`` 3, written out: the 3 ends with the lowest
    support loss, softmax(−loss / τ) weights, their mean + A × their spread."""
    losses = torch.stack([_model_loss(model, params, c, one) for c in ends])
    top = [int(i) for i in losses.detach().argsort()[:3]]
    w = torch.softmax(-losses[top].detach() / params["pool.log_tau"].exp(), 0)  # no gradient through the fit
    mean = sum(wi * ends[i] for wi, i in zip(w, top))
    var = sum(wi * (ends[i] - mean) ** 2 for wi, i in zip(w, top))
    return mean + params["pool.spread"] @ (var + 1e-8).sqrt(), ends[top[0]]


def test_pooled_context_and_its_meta_gradient_equal_a_hand_built_pool():
    params, target, lrs, model, pooled, support, query = _pooled_setup()
    one = support.row(2)
    ends = [pooled._descend(c, one, 2) for c in [params["context"], *params["context_starts"]]]
    want_q, want_end = _pool_by_hand(params, model, ends, one)
    got = pooled.adapt(pooled.prior(), one, 2)
    assert torch.allclose(got["context"], want_q, atol=1e-10) and torch.allclose(got["end"], want_end, atol=1e-10)
    assert not torch.allclose(got["context"], got["end"], atol=1e-3)  # the Q-network reads more than the best end
    # the meta-gradient reaches A, τ and every pooled start, and equals the hand-built one
    wrt = [*params.values(), lrs]
    want = torch.autograd.grad(pooled.outer_loss({"context": want_q, "end": want_end}, query.row(2), target=target),
                               wrt, allow_unused=True)
    got_g = torch.autograd.grad(outer_losses(pooled, support, query, steps=2, target=target)[2], wrt,
                                allow_unused=True)
    for a, b, p in zip(got_g, want, wrt):
        assert torch.allclose(torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if b is None else b,
                              atol=1e-9)
    named = dict(zip([*params, "lrs"], got_g))
    assert float(named["pool.spread"].abs().sum()) > 0 and float(named["pool.log_tau"].abs()) > 0
    assert int((named["context_starts"].abs().sum(1) > 0).sum()) >= 2  # more than the best end's start learns
    # no steps: the prior, whose spread is nil; online, the previous end competes as one more start
    assert torch.equal(pooled.adapt(pooled.prior(), one, 0)["context"], params["context"])
    previous = {"context": torch.zeros(D, dtype=torch.float64), "end": torch.randn(D, dtype=torch.float64) * 3}
    candidates = [previous["end"], params["context"], *params["context_starts"]]
    want_q, _ = _pool_by_hand(params, model, [pooled._descend(c, one, 2) for c in candidates], one)
    assert torch.allclose(pooled.readapt(previous, one, 2)["context"], want_q, atol=1e-10)


def test_context_pool_trains_evaluates_and_resumes_end_to_end(tmp_path):
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(4, 2, seed=0)
    extras = dict(iterations=4, context_starts=3, context_pool=3, eval_every=0)
    full = MAMLDQN(family, **_tiny(**extras)).meta_train(train, out_dir=tmp_path / "full", progress=False)
    assert {"pool.spread", "pool.log_tau"} <= set(full.params)
    MAMLDQN(family, **_tiny(**extras)).meta_train(train, iterations=2, out_dir=tmp_path / "part", progress=False)
    resumed = MAMLDQN.load(tmp_path / "part")
    resumed.meta_train(out_dir=tmp_path / "part", progress=False)
    for k, v in full.params.items():
        assert torch.equal(v, resumed.params[k]), k
    loaded = MAMLDQN.load(tmp_path / "full")
    assert loaded.adapter().pool == 3 and loaded.config.context_pool == 3
    result = metadqn.evaluate(loaded, test, baselines=[], config=metadqn.EvalConfig(
        seeds=1, budgets=(1,), steps=(0, 2), eval_episodes=1, online=True, online_steps=2))
    assert set(result["methods"]["context"]["nr"]["1"]) == {"0", "2"} and result["online"]["methods"]["context"]["nr"]
    assert result["meta_training"]["config"]["context_pool"] == 3  # in the result JSON
    for bad, match in ((dict(context_pool=0), "context_pool must be >= 1"),
                       (dict(algo="encoder", context_pool=2, context_starts=2, inner_steps=2), "use algo 'context'")):
        with pytest.raises(ValueError, match=match):
            metadqn.MetaConfig(**bad)
    # at most context_starts ends; a shortlist shorter than the pool is widened to it
    assert metadqn.MetaConfig(context_pool=3, context_starts=2).pooled_ends == 2
    assert metadqn.MetaConfig(context_pool=3).pooled_ends == 1 and "pool.spread" not in MAMLDQN(
        family, **_tiny(context_pool=3, context_starts=1)).params
    wide = MAMLDQN(family, **_tiny(**{**extras, "context_starts": 5, "context_pool": 4, "start_shortlist": 2}))
    wide.meta_train(train, iterations=1, progress=False)
    assert wide.adapter().pool == 4


def test_gridnav_recommends_pooled_ends_and_a_user_with_one_start_still_trains(tmp_path, capsys):
    from metadqn.cli import main
    main(["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--iterations", "1",
          "--set", "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "envs_per_task=1", "--set", "eval_every=0",
          "--out", str(tmp_path / "rec"), "--quiet"])
    assert "context_pool=3" in capsys.readouterr().out
    assert json.loads((tmp_path / "rec" / "config.json").read_text())["config"]["context_pool"] == 3
    assert MAMLDQN.load(tmp_path / "rec").adapter().pool == 3
    # the recommendation stands beside a user's single start: nothing to pool, no error
    main(["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--iterations", "1",
          "--set", "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "envs_per_task=1", "--set", "eval_every=0",
          "--set", "context_starts=1", "--out", str(tmp_path / "one"), "--quiet"])
    assert MAMLDQN.load(tmp_path / "one").adapter().pool == 1
