"""The blr context (adapters/blr.py): the closed-form posterior against the Beta posterior it
reduces to on a bandit, its meta-gradient against an explicit per-instance computation, and
the CLI end to end."""

import json
import math

import pytest
import torch

import metadqn
from metadqn.adapters import BLRContextAdapter, LinearModel, SupportSpec
from metadqn.cli import main
from metadqn.meta.iteration import outer_losses
from metadqn.nets import NetSpec, build_qnet, init_params
from metadqn.replay import Batch, Query
from metadqn.td import TDLoss, td_loss

T, B, OBS, A, D = 3, 12, 3, 4, 5


def test_one_hot_features_give_each_arms_beta_posterior_mean():
    """With φ(s, a, s′) = one-hot(a), prior precision 2 and prior mean ½, W_N is each arm's
    Beta(1 + wins, 1 + losses) posterior mean — also for an arm never pulled (½)."""
    arms = 5
    model = LinearModel((1,), arms, arms, (), "next")
    params = model.init_params(0)
    weight = torch.zeros(arms, 1 + arms + 1)
    weight[:, 1:1 + arms] = torch.eye(arms)
    params.update({"model.features.0.weight": weight, "model.features.0.bias": torch.zeros(arms),
                   "model.log_precision": torch.full((arms,), math.log(2.0))})
    gen = torch.Generator().manual_seed(3)
    action = torch.randint(0, arms - 1, (20,), generator=gen)  # the last arm is never pulled
    reward = (torch.rand(20, generator=gen) < 0.6).float()
    t = torch.arange(20.0).unsqueeze(-1) / 20
    batch = Batch(t, action, reward, t + 1 / 20, torch.ones(20))
    got = model.posterior_mean(params, torch.full((arms, 1), 0.5), batch).squeeze(-1)
    wins = torch.bincount(action, weights=reward, minlength=arms)
    pulls = torch.bincount(action, minlength=arms).float()
    torch.testing.assert_close(got, (1 + wins) / (2 + pulls))
    assert got[-1].item() == pytest.approx(0.5)


def _setup(reward_model, obs_weight):
    torch.manual_seed(0)
    model = LinearModel((OBS,), A, D, (7,), reward_model, obs_weight)
    net = build_qnet(NetSpec(hidden=(10,), activation="tanh", context=model.context_width), (OBS,), A).double()
    params = {**init_params(net, 0), **model.init_params(1)}
    params = {k: (v.double() + (0.1 if k in ("context", "model.log_precision") else 0.0)).requires_grad_()
              for k, v in params.items()}
    target = {k: v.detach() + 0.01 for k, v in params.items()}
    adapter = BLRContextAdapter("blr", net, model, params, td=TDLoss(), support=SupportSpec(), model_weight=0.3)
    f = dict(dtype=torch.float64)

    def batch():
        return Batch(torch.randn(T, B, OBS, **f), torch.randint(0, A, (T, B)), torch.randn(T, B, **f),
                     torch.randn(T, B, OBS, **f), torch.rand(T, B, **f))
    return net, model, params, target, adapter, batch(), batch()


@pytest.mark.parametrize("reward_model,obs_weight,n_step", [("next", 0.0, 1), ("joint", 0.5, 1), ("joint", 0.0, 3)])
def test_blr_meta_gradient_equals_an_explicit_inverse_per_instance(reward_model, obs_weight, n_step):
    """The vmapped solve and outer loss against W_N = (Λ + ΦᵀΦ)⁻¹(Λ W₀ + ΦᵀY) written out with
    an explicit inverse, instance by instance; the model loss is context MAML's L_model
    (mean (r̂ − r)² + obs_weight · mean ‖Δŝ − Δs‖²)."""
    net, model, params, target, adapter, support, query = _setup(reward_model, obs_weight)
    gen, f = torch.Generator().manual_seed(9), dict(dtype=torch.float64)
    steps_long = Batch(torch.randn(T, B, OBS, generator=gen, **f), torch.randint(0, A, (T, B), generator=gen),
                       torch.randn(T, B, generator=gen, **f), torch.randn(T, B, OBS, generator=gen, **f),
                       torch.rand(T, B, generator=gen, **f)) if n_step > 1 else query
    data = Query(query, steps_long) if n_step > 1 else query
    got = torch.autograd.grad(outer_losses(adapter, support, data, steps=1, target=target).mean(), list(params.values()))

    def features(b):
        x = [b.obs, torch.nn.functional.one_hot(b.action, A).double()] + ([b.next_obs] if reward_model == "next" else [])
        h = torch.relu(torch.cat(x, 1) @ params["model.features.0.weight"].T + params["model.features.0.bias"])
        return h @ params["model.features.1.weight"].T + params["model.features.1.bias"]

    def model_loss(w, b):
        phi = features(b)
        loss = ((phi @ w[:, 0] - b.returns) ** 2).mean()
        if w.shape[1] > 1:
            loss = loss + obs_weight * ((phi @ w[:, 1:] - (b.next_obs - b.obs)) ** 2).mean()
        return loss

    total = 0.0
    for i in range(T):
        s = support.row(i)
        phi = features(s)
        y = s.returns.unsqueeze(1)
        if obs_weight:
            y = torch.cat((y, (s.next_obs - s.obs) * math.sqrt(obs_weight / OBS)), 1)
        lam = torch.diag(params["model.log_precision"].exp())
        w = torch.linalg.inv(lam + phi.T @ phi) @ (lam @ params["context"].view(D, -1) + phi.T @ y)
        w_unscaled = torch.cat((w[:, :1], w[:, 1:] / math.sqrt(obs_weight / OBS)), 1) if obs_weight else w
        c = w.reshape(-1)
        total = total + td_loss(net, {**params, "context": c}, query.row(i), target={**target, "context": c.detach()}) \
            + 0.3 * model_loss(w_unscaled, steps_long.row(i))
    want = torch.autograd.grad(total / T, list(params.values()))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-6)
    assert model.context_width == D * (1 + (OBS if obs_weight else 0))


def test_zero_steps_is_the_prior_and_any_step_the_posterior():
    _, _, params, _, adapter, support, _ = _setup("next", 0.0)
    prior = adapter.prior()
    assert torch.equal(adapter.adapt(prior, support.row(0), 0)["context"], params["context"])
    one, five = (adapter.adapt(prior, support.row(0), k)["context"] for k in (1, 5))
    assert torch.equal(one, five) and not torch.allclose(one, params["context"])
    assert not adapter.resumable and adapter.online


def test_blr_trains_adapts_and_evaluates_online_through_the_cli(tmp_path, capsys):
    run_dir = tmp_path / "blr"
    assert main(["train", "--family", "gridnav", "--family-options", "{\"size\": 5}", "--algo", "blr", "--out",
                 str(run_dir), "--quiet", "--iterations", "2", "--set", "n_train_tasks=4", "--set", "n_test_tasks=2",
                 "--set", "eval_every=0", "--set", "net.context=6", "--set", "reward_model=next"]) == 0
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    assert (saved["algo"], saved["net"]["context"]) == ("blr", 6)
    assert main(["adapt", str(run_dir), "--episodes", "1"]) == 0
    assert main(["evaluate", str(run_dir), "--baselines", "", "--budgets", "1", "--steps", "0,1", "--seeds", "1",
                 "--online", "--quiet", "--json", str(tmp_path / "blr.json")]) == 0
    report = json.loads((tmp_path / "blr.json").read_text())
    assert report["methods"]["blr"]["adapter"]["kind"] == "blr-context"
    learner = metadqn.MAMLDQN.load(run_dir)
    assert learner.params["context"].shape == (6,) and learner.params["model.log_precision"].shape == (6,)
    with pytest.raises(ValueError, match="context_starts > 1"):
        metadqn.MetaConfig(algo="blr", context_starts=4)
    with pytest.raises(ValueError, match="task_loss_weight"):
        metadqn.MetaConfig(algo="blr", task_loss_weight=1.0)
    with pytest.raises(ValueError, match="model_members must be 1"):
        metadqn.MetaConfig(algo="blr", model_members=3)


def test_blr_learns_the_bandit_to_most_of_its_frozen_information_limit():
    """The bandit's own defaults (blr with its recommended settings, no algorithm named), 40
    iterations (≈ 30 s on one core): after one random episode, greedy NR on the held-out arms
    ≥ 80% of the best frozen policy's given the same data (measured 0.755–0.775 over three seeds,
    90–93% of its 0.834, before support_prefix_min; 0.763 with it), where the prior context
    alone scores below 0.2."""
    from metadqn.limits import limit_returns
    from metadqn.stats import normalized
    import numpy as np
    torch.manual_seed(0)
    learner = metadqn.MAMLDQN("bandit", eval_every=0, checkpoint_every=0, seed=0)
    assert (learner.config.algo, learner.config.reward_model, learner.config.net.film) == ("blr", "next", True)
    learner.meta_train(iterations=40)
    tasks, family = learner.test_tasks, learner.family
    nr = learner.adaptation_returns(tasks, steps=(0, 1), episodes=1, runs=10, eval_episodes=5, seed=123)["nr"]
    rand = np.array([[family.random_return(t)] for t in tasks])
    best = np.array([[family.oracle_return(t)] for t in tasks])
    limit = normalized(limit_returns(family, tasks, kind="frozen", runs_per_task=10, episodes=1, seed=123), rand, best)
    assert nr[0].mean().item() < 0.2
    assert nr[1].mean().item() >= 0.8 * limit.mean(), (nr[1].mean().item(), limit.mean())


def test_support_prefix_min_meta_trains_on_beginnings_of_the_support(outer_loss_calls):
    """With ``support_prefix_min`` every meta-update's outer loss adapts on the support's first m
    transitions (the oldest; one m for all instances), m from support_prefix_min to all of them."""
    family = metadqn.make_family("bandit", arms=3, horizon=10)
    learner = metadqn.MAMLDQN(family, algo="blr", support_prefix_min=3, outer_steps=12, n_train_tasks=2,
                              envs_per_task=2, eval_every=0, checkpoint_every=0, seed=0)
    learner.meta_train(iterations=2, progress=False)
    lengths = [b.obs.shape[1] for b, _ in outer_loss_calls]
    assert len(lengths) == 24 and min(lengths) >= 3 and max(lengths) <= 10 and len(set(lengths)) >= 4, lengths
    for b, _ in outer_loss_calls:  # the bandit observes the fraction of pulls made: the oldest m are 0, 1/10, ...
        m = b.obs.shape[1]
        assert torch.allclose(b.obs[..., 0], (torch.arange(m) / 10).expand(4, m))
    # off (the bandit recommends 1 for blr): always the whole episode
    outer_loss_calls.clear()
    metadqn.MAMLDQN(family, algo="blr", support_prefix_min=0, outer_steps=3, n_train_tasks=2, envs_per_task=2,
                    eval_every=0, checkpoint_every=0).meta_train(iterations=1, progress=False)
    assert [b.obs.shape[1] for b, _ in outer_loss_calls] == [10, 10, 10]


@pytest.mark.parametrize("settings, message", [
    (dict(algo="maml", support_prefix_min=1), "support_batch=0"),
    (dict(algo="blr", support_prefix_min=-1), "support_prefix_min must be >= 0"),
])
def test_support_prefix_min_refuses_what_it_cannot_cut(settings, message):
    with pytest.raises(ValueError, match=message):
        metadqn.MetaConfig(**settings)


def test_the_bandit_defaults_to_blr_unless_the_user_names_an_algorithm(tmp_path, capsys):
    """A family's own default algorithm (``FAMILY_ALGOS``) and its recommendation apply where no
    algorithm is given, are printed, and land in the saved config; a named algorithm wins."""
    assert metadqn.MetaConfig.family_defaults("bandit", {}) == {
        "algo": "blr", "reward_model": "next", "model_obs_weight": 0.0, "net": {"film": True}, "support_prefix_min": 1}
    context = metadqn.MAMLDQN("bandit", algo="context").config
    assert (context.algo, context.net.film, context.support_prefix_min, context.reward_model) == (
        "context", False, 0, "joint")
    assert metadqn.MAMLDQN("gridnav").config.algo == "context"
    preference = metadqn.MAMLDQN("preference").config
    assert (preference.algo, preference.iterations, preference.net.film) == ("blr", 600, True)
    assert metadqn.MAMLDQN("preference", iterations=50).config.iterations == 50
    assert main(["train", "--family", "bandit", "--iterations", "1", "--set", "n_train_tasks=2", "--set",
                 "n_test_tasks=1", "--set", "eval_every=0", "--quiet", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "recommended for bandit: algo=blr, reward_model=next" in out
    assert "blr defaults: inner_steps=1, outer_steps=8, support_batch=0" in out  # not the inner_lr it ignores
    saved = json.loads((tmp_path / "b" / "config.json").read_text())["config"]
    assert (saved["algo"], saved["support_prefix_min"], saved["net"]["film"]) == ("blr", 1, True)


def test_a_saved_blr_run_resumes_bit_exactly(tmp_path):
    tiny = dict(n_train_tasks=3, n_test_tasks=2, envs_per_task=2, query_batch=16, eval_every=0, checkpoint_every=0,
                net={"hidden": [16]}, model_hidden=[16], seed=3, reward_model="next", model_obs_weight=0.0)
    learner = metadqn.MAMLDQN(metadqn.make_family("gridnav", size=5), algo="blr", **tiny)
    learner.meta_train(iterations=2, progress=False)
    learner.save(tmp_path / "checkpoint.safetensors")
    again = metadqn.MAMLDQN.load(tmp_path / "checkpoint.safetensors")
    for one in (learner, again):
        one.meta_train(iterations=4, progress=False)
    for k, v in learner.params.items():
        assert torch.equal(again.params[k], v), k


def test_newest_context_obs_gives_blr_the_newest_step_of_a_window():
    """context_obs='newest': the features read each window's newest step (not its flag), exactly
    as they read an unwindowed observation."""
    W = 3
    flat, win = LinearModel((OBS,), A, D, (7,), "next"), LinearModel((W, OBS + 1), A, D, (7,), "next", newest=True)
    params = flat.init_params(0)
    obs, nxt = torch.randn(6, W, OBS + 1), torch.randn(6, W, OBS + 1)
    batch = Batch(obs, torch.randint(0, A, (6,)), torch.randn(6), nxt, torch.ones(6))
    older = batch._replace(obs=obs + torch.cat((torch.ones(6, W - 1, OBS + 1), torch.zeros(6, 1, OBS + 1)), 1))
    want = flat.posterior_mean(params, torch.zeros(D, 1), Batch(obs[:, -1, :OBS], batch.action, batch.returns,
                                                                 nxt[:, -1, :OBS], batch.discount))
    assert torch.equal(win.posterior_mean(params, torch.zeros(D, 1), batch), want)
    assert torch.equal(win.posterior_mean(params, torch.zeros(D, 1), older), want)
