"""The fast-adaptation protocol: NR references, confidence intervals, the JSON schema,
the report, and clear errors."""

import json

import numpy as np
import pytest
import torch

from metadqn import make_family
from metadqn.cli import main
from metadqn.adaptation import adaptation_curve
from metadqn.baselines import finetune_adapter, random_returns
from metadqn.evaluate import EvalConfig, evaluate
from metadqn.learner import MAMLDQN
from metadqn.nets import NetSpec, build_qnet, init_params
from metadqn.rollout import greedy_returns, params_q
from metadqn.stats import interval, normalized
from metadqn.td import TDLoss


def _bandit_q(family, means):
    """A network whose Q-values are the arm means everywhere (the optimal greedy policy)."""
    net = build_qnet(NetSpec(hidden=(4,)), (1,), family.arms)
    params = {k: torch.zeros_like(v) for k, v in init_params(net, 0).items()}
    params["fcs.1.bias"] = torch.tensor(means, dtype=torch.float32)
    return net, params


def test_oracle_policy_scores_nr_one_and_random_policy_nr_zero():
    family = make_family("bandit")
    task = family.task(means=[0.1, 0.9, 0.3, 0.5, 0.2])
    net, params = _bandit_q(family, task["means"])
    rand = np.array([family.random_return(task)])
    oracle = np.array([family.oracle_return(task)])
    fixed = finetune_adapter("fixed", net, params, lr=0.1, epsilon=0.0, td=TDLoss(), batch=8)
    ret = adaptation_curve(fixed, family, [task], runs_per_task=50, episodes=1, steps=(0,), eval_episodes=10,
                           seed=3)[0]
    assert abs(normalized(ret.numpy(), rand, oracle).mean() - 1.0) < 0.05
    random_ret = greedy_returns(family, [task] * 50, params_q(net, params), episodes=10, seed=4, epsilon=1.0).mean(-1)
    assert abs(normalized(random_ret.numpy()[None], rand, oracle).mean()) < 0.1
    # a deliberately bad policy (always the worst arm) is clearly below random
    bad_net, bad = _bandit_q(family, [-m for m in task["means"]])
    worst_adapter = finetune_adapter("worst", bad_net, bad, lr=0.1, epsilon=0.0, td=TDLoss(), batch=8)
    worst = adaptation_curve(worst_adapter, family, [task], runs_per_task=20, episodes=1, steps=(0,), eval_episodes=5,
                             seed=5)[0]
    assert normalized(worst.numpy(), rand, oracle).mean() < -0.5


def test_random_return_estimate_matches_exact_value():
    family = make_family("bandit")
    tasks = family.sample_tasks(4, seed=1)
    exact = random_returns(family, tasks)
    family.random_return = lambda task: None  # force the Monte-Carlo estimate
    est = random_returns(family, tasks, episodes=400, seed=2)
    assert np.allclose(est, exact, atol=0.5)


def test_interval_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = rng.normal(0.5, 1.0, size=(5, 3))
    big = rng.normal(0.5, 1.0, size=(80, 5))
    s, b = interval(small), interval(big)
    for c, x in ((s, small), (b, big)):
        assert c["ci_low"] <= c["mean"] <= c["ci_high"]
        assert c["mean"] == pytest.approx(x.mean())
    assert b["ci_high"] - b["ci_low"] < s["ci_high"] - s["ci_low"]
    assert 0.25 < b["ci_low"] < 0.5 < b["ci_high"] < 0.75  # covers the true mean
    const = interval(np.full((4, 2), 0.3))
    assert const["ci_low"] == const["ci_high"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="NaN"):
        interval(np.array([[np.nan, 1.0]]))


def test_normalized_return_refuses_an_oracle_no_better_than_random():
    with pytest.raises(ValueError, match="not above the random return"):
        normalized(np.zeros((1, 2)), np.array([1.0]), np.array([1.0]))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    family = make_family("bandit", horizon=10)
    train, test = family.split(6, 4, seed=0)
    learner = MAMLDQN(family, algo="maml", iterations=3, envs_per_task=2, eval_every=0, n_train_tasks=6,
                      n_test_tasks=4)
    out = tmp_path_factory.mktemp("run")
    learner.meta_train(train, test_tasks=test, out_dir=out, progress=False)
    return learner, out


TINY = dict(seeds=2, budgets=(1, 2), steps=(0, 1), eval_episodes=2, multitask_steps=1_200, lr_grid=(0.1,),
            eps_grid=(1.0,), tune_tasks=2, bootstrap_reps=200)


def test_evaluate_json_schema_and_references(tiny_run):
    learner, _ = tiny_run
    res = evaluate(learner, config=EvalConfig(**TINY), progress=False)
    assert res["family"] == "bandit" and res["n_test_tasks"] == 4 and res["seeds"] == 2
    assert res["budgets"] == [1, 2] and res["steps"] == [0, 1]
    assert set(res["methods"]) == {"maml", "multitask", "scratch", "oracle"}
    for name, m in res["methods"].items():
        for key in ("nr", "return"):
            assert set(m[key]) == {"1", "2"}
            for cell in m[key].values():
                assert set(cell) == {"0", "1"}
                for c in cell.values():
                    assert c["ci_low"] <= c["mean"] <= c["ci_high"]
    assert all(c["mean"] == 1.0 for cell in res["methods"]["oracle"]["nr"].values() for c in cell.values())
    assert set(res["env_steps_to_95pct_oracle"]) == set(res["methods"])
    assert res["env_steps_to_95pct_oracle"]["oracle"] is None
    assert res["methods"]["multitask"]["tuned"]["lr"] == 0.1
    assert len(res["per_task_gain"]["methods"]["maml"]["1"]) == 4
    # zero gradient steps do not depend on the budget... except through new data: k=0 is
    # the same policy whatever the budget, so its return is identical
    m = res["methods"]["maml"]["return"]
    assert m["1"]["0"]["mean"] == pytest.approx(m["2"]["0"]["mean"])
    # the information limit (Beta posterior) per budget, each method's fraction of it, and the
    # paired adapted - zero-shot gains
    limit = res["references"]["limit"]["nr"]
    assert set(limit) == {"1", "2"} and 0.3 < limit["1"]["mean"] <= 1.0
    for name in ("maml", "multitask", "scratch"):
        entry = res["methods"][name]
        assert entry["fraction_of_limit"]["1"]["1"] == pytest.approx(entry["nr"]["1"]["1"]["mean"] / limit["1"]["mean"])
        assert set(entry["gain"]["2"]) == {"1"}
    assert res["config"]["multitask_batch"] == 32 and res["meta_training"]["config"]["algo"] == "maml"
    spent = res["baseline_budgets"]
    assert spent["multitask"]["env_steps"] == 1_200 and spent["multitask"]["seconds"] > 0
    assert spent["oracle"] == {"env_steps": 0, "seconds": spent["oracle"]["seconds"], "exact": True}
    json.dumps(res)  # JSON-ready


def test_evaluate_compares_other_learners_on_the_same_protocol(tiny_run):
    learner, _ = tiny_run
    other = MAMLDQN(learner.family, algo="context", iterations=2, envs_per_task=2, eval_every=0, outer_steps=2)
    other.meta_train(learner.train_tasks, progress=False)
    cfg = EvalConfig(**{**TINY, "budgets": (1,)})
    res = evaluate(learner, config=cfg, baselines=(), compare={"context": other}, progress=False)
    assert set(res["methods"]) == {"maml", "context"}
    assert res["methods"]["context"]["adapter"]["kind"] == "context-model"
    assert res["meta_training"]["compared"]["context"]["iterations"] == 2
    stranger = MAMLDQN(learner.family, algo="context", iterations=1, envs_per_task=1, eval_every=0, outer_steps=1)
    stranger.meta_train(learner.test_tasks, progress=False)
    with pytest.raises(ValueError, match="seen in meta-training"):
        evaluate(learner, config=cfg, baselines=(), compare={"bad": stranger}, progress=False)


def test_evaluate_rejects_test_tasks_seen_in_training_and_unknown_baselines(tiny_run):
    learner, _ = tiny_run
    with pytest.raises(ValueError, match="seen in meta-training"):
        evaluate(learner, learner.train_tasks[:2], config=EvalConfig(**TINY), progress=False)
    with pytest.raises(ValueError, match="unknown baseline"):
        EvalConfig(baselines=("nope",))


def test_cli_evaluate_writes_json_report_and_plots(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    out = tmp_path / "ev.json"
    code = main(["evaluate", str(run), "--seeds", "2", "--budgets", "1", "--steps", "0,1", "--baselines",
                 "scratch,oracle", "--eval-episodes", "2", "--json", str(out), "--quiet"])
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"maml", "scratch", "oracle"}
    report = (run / "report.md").read_text()
    assert "| maml |" in report and "Headline" in report
    for png in ("nr_vs_steps.png", "nr_vs_budget.png", "adaptation_hist.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    assert "information limit" in report and "Adapted − zero-shot" in report and "Baselines' budgets" in report
    assert "report:" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--budgets", "one"]) == 2
    assert main(["evaluate", str(run), "--baselines", "bogus"]) == 2


def test_a_second_evaluation_keeps_the_first_ones_report_and_says_where(tiny_run, capsys):
    from metadqn.report import REPORT_FILES
    _, run = tiny_run
    argv = ["evaluate", str(run), "--seeds", "1", "--budgets", "1", "--baselines", "", "--eval-episodes", "1", "--quiet"]
    assert main([*argv, "--steps", "0"]) == 0
    first = (run / "evaluation.json").read_text()
    earlier = set((run / "evaluations").glob("*"))
    capsys.readouterr()
    assert main([*argv, "--steps", "0,1"]) == 0
    (kept,) = set((run / "evaluations").glob("*")) - earlier
    assert f"the earlier evaluation's report in {run} is kept in {kept}" in capsys.readouterr().err
    assert sorted(p.name for p in kept.iterdir()) == sorted(REPORT_FILES)
    assert (kept / "evaluation.json").read_text() == first  # the first evaluation, unchanged
    assert json.loads((run / "evaluation.json").read_text())["steps"] == [0, 1]  # the new one in its place


def test_reports_written_within_one_second_are_kept_apart(tmp_path):
    import os
    from metadqn.report import keep_earlier_report
    assert keep_earlier_report(tmp_path) is None  # nothing to keep
    kept = []
    for text in ("first", "second"):
        (tmp_path / "report.md").write_text(text)
        os.utime(tmp_path / "report.md", (1_700_000_000, 1_700_000_000))
        kept.append(keep_earlier_report(tmp_path))
    assert kept[0] != kept[1] and kept[1].name == kept[0].name + "-2"
    assert [(k / "report.md").read_text() for k in kept] == ["first", "second"]
    assert not (tmp_path / "report.md").exists()


def test_headline_has_no_gain_line_without_a_zero_shot_number():
    from metadqn.report import headline
    cell = {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    result = {"budgets": [1], "steps": [10], "meta_training": {"algo": "context"}, "references": {},
              "methods": {"context": {"nr": {"1": {"10": cell}}}}, "env_steps_to_95pct_oracle": {"context": None}}
    lines = headline(result)
    assert not any("nan" in line for line in lines) and not any("adaptation gain" in line for line in lines)
    result["steps"] = [0, 10]
    result["methods"]["context"]["nr"]["1"]["0"] = {**cell, "mean": 0.1}
    assert "context: adaptation gain NR(10) − NR(0) = +0.40" in headline(result)
    assert "context: best NR within 10 adaptation steps after 1 episode = 0.500 (target ≥ 0.85: NOT met)" \
        in headline(result)
    result["methods"]["context"]["nr"]["1"]["10"] = {**cell, "mean": 0.8494}  # just under: three digits tell
    assert "context: best NR within 10 adaptation steps after 1 episode = 0.849 (target ≥ 0.85: NOT met)" \
        in headline(result)
    result["methods"]["context"]["nr"]["1"]["10"] = cell
    # where the information limit is below the target, the target is 95% of it (the bandit's case)
    result["references"]["limit"] = {"nr": {"1": {**cell, "mean": 0.52}}}
    assert "context: best NR within 10 adaptation steps after 1 episode = 0.500 (target ≥ 0.49, 95% of the limit: " \
        "met)" in headline(result)


def test_a_learner_that_reads_time_is_evaluated_in_its_view_beside_one_that_does_not(tiny_run):
    learner, _ = tiny_run
    timed = MAMLDQN(learner.family, algo="context", time_feature=True, iterations=2, envs_per_task=2, eval_every=0,
                    outer_steps=2)
    timed.meta_train(learner.train_tasks, progress=False)
    cfg = EvalConfig(**{**TINY, "budgets": (1,)})
    res = evaluate(learner, config=cfg, baselines=(), compare={"timed": timed}, progress=False)
    assert res["family"] == "bandit" and set(res["methods"]) == {"maml", "timed"}
    # the timed learner played the evaluation's own episodes, seeing t / H: its numbers are those of
    # the protocol's data run through its view of the family
    want = adaptation_curve(timed.adapter(), timed.family, learner.test_tasks, runs_per_task=cfg.seeds, episodes=1,
                            steps=cfg.steps, eval_episodes=cfg.eval_episodes, seed=cfg.data_seed)
    for k in cfg.steps:
        assert res["methods"]["timed"]["return"]["1"][str(k)]["mean"] == pytest.approx(float(want[k].mean()))
    # and the other way round: a timed learner's evaluation runs the plain one in the family itself
    back = evaluate(timed, learner.test_tasks, config=cfg, baselines=(), compare={"maml": learner}, progress=False)
    assert back["methods"]["maml"]["return"] == res["methods"]["maml"]["return"]
