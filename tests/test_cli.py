"""The command line: families, dqn, train/adapt/resume, and clear errors with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import metadqn
import metadqn.nets
from metadqn.cli import main


def run(*argv):
    return subprocess.run([sys.executable, "-m", "metadqn.cli", *argv], capture_output=True, text=True)


def test_families_json_lists_families_with_parameter_ranges():
    out = run("families", "--json")
    assert out.returncode == 0
    data = {d["name"]: d for d in json.loads(out.stdout)}
    assert {"gridnav", "cartpole-physics", "bandit"} <= set(data)
    gravity = next(p for p in data["cartpole-physics"]["parameters"] if p["name"] == "gravity")
    assert gravity["low"] < 9.8 < gravity["high"]
    assert data["gridnav"]["action_space"]["n"] == 4


@pytest.mark.parametrize("argv,match", [
    (["dqn", "--family", "nope", "--out", "x"], "unknown task family 'nope'"),
    (["dqn", "--family", "gridnav", "--task", "{\"goal\": [99, 1]}", "--out", "x"], "out of range"),
    (["dqn", "--family", "gridnav", "--task", "[1,", "--out", "x"], "--task must be a JSON object"),
    (["train", "--set", "inner_lr=-3", "--out", "x"], "inner_lr must be a positive"),
    (["train", "--set", "colour=blue", "--out", "x"], "unknown key"),
    (["adapt", "no/such/run"], "no checkpoint"),
    (["train", "--device", "gpu", "--out", "x"], "device must be 'cpu', 'cuda' (or 'cuda:N') or 'auto'"),
    (["dqn", "--device", "cuda:banana", "--out", "x"], "device must be"),
    (["demo", "--jobs", "0", "--out", "x"], "--jobs must be >= 1"),
    (["train", "--set", "reward_model=\"sas\"", "--out", "x"], "reward_model must be one of"),
    (["train", "--algo", "maml", "--set", "task_loss_weight=1", "--out", "x"], "task_loss_weight asks a task context"),
])
def test_bad_input_prints_one_clear_line_and_exits_2(argv, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run(*argv)
    assert out.returncode == 2
    assert match in out.stderr
    assert "Traceback" not in out.stderr


def test_train_adapt_and_resume_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "nav"
    base = ["train", "--family", "gridnav", "--family-options", "{\"size\": 5}", "--out", str(run_dir), "--quiet",
            "--set", "n_train_tasks=4", "--set", "n_test_tasks=2", "--set", "envs_per_task=2",
            "--set", "eval_every=2", "--set", "eval_runs=1", "--set", "checkpoint_every=2", "--set", "net.hidden=[16]"]
    assert main([*base, "--iterations", "2"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "maml-dqn" and config["config"]["n_train_tasks"] == 4 and len(config["test_tasks"]) == 2
    assert main(["train", "--out", str(run_dir), "--resume", "--iterations", "4", "--quiet"]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    capsys.readouterr()
    kept = tmp_path / "kept"
    assert main([*base[:6], str(kept), *base[7:], "--iterations", "3", "--set", "keep_best_every=1"]) == 0
    rows = [json.loads(line) for line in (kept / "metrics.jsonl").read_text().splitlines()]
    best = rows[-1]["best_iteration"]
    assert f"kept the parameters of iteration {best} " in capsys.readouterr().out
    assert json.loads((kept / "config.json").read_text())["config"]["keep_best_every"] == 1
    assert main(["evaluate", str(kept), "--baselines", "", "--budgets", "1", "--steps", "0", "--seeds", "1", "--quiet",
                 "--json", str(tmp_path / "kept.json")]) == 0
    assert json.loads((tmp_path / "kept.json").read_text())["meta_training"]["kept_iteration"] == best
    capsys.readouterr()
    assert main(["adapt", str(run_dir), "--task", "{\"goal\": [0, 0]}", "--steps", "2", "--eval-episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "before adaptation" in out and "after 2 step(s)" in out and "oracle return" in out


def test_film_trains_and_evaluates_beside_baselines_whose_network_has_no_context(tmp_path, capsys):
    run_dir = tmp_path / "film"
    assert main(["train", "--family", "gridnav", "--family-options", "{\"size\": 5}", "--out", str(run_dir), "--quiet",
                 "--iterations", "1", "--set", "n_train_tasks=4", "--set", "n_test_tasks=2", "--set", "eval_every=0",
                 "--set", "net.film=true", "--set", "net.hidden=[16]"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["config"]["net"]["film"] is True
    assert main(["evaluate", str(run_dir), "--baselines", "multitask", "--multitask-steps", "200", "--budgets", "1",
                 "--steps", "0,1", "--seeds", "1", "--quiet", "--json", str(tmp_path / "film.json")]) == 0
    methods = json.loads((tmp_path / "film.json").read_text())["methods"]
    assert {"context", "multitask"} <= set(methods)
    with pytest.raises(ValueError, match="needs a context"):
        metadqn.MetaConfig(algo="maml", net=metadqn.nets.NetSpec(film=True))
    with pytest.raises(ValueError, match="the DQN has none"):
        metadqn.DQNConfig(net=metadqn.nets.NetSpec(film=True))


def test_dqn_command_writes_checkpoint_config_and_metrics(tmp_path, capsys):
    out_dir = tmp_path / "dqn"
    assert main(["dqn", "--family", "gridnav", "--out", str(out_dir), "--steps", "800", "--quiet",
                 "--set", "eval_every=400"]) == 0
    assert (out_dir / "checkpoint.safetensors").exists()
    assert json.loads((out_dir / "config.json").read_text())["config"]["total_steps"] == 800
    assert len((out_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert "greedy return" in capsys.readouterr().out


def test_dqn_takes_a_familys_recommended_settings_only_where_the_user_leaves_them_unset(tmp_path, capsys):
    from metadqn.dqn_agent import DQN_FAMILY_DEFAULTS, DQN, DQNConfig
    preset = DQN_FAMILY_DEFAULTS["acrobot-physics"]
    assert DQN("acrobot-physics").config.n_step == preset["n_step"] != DQNConfig.n_step
    mine = DQN("acrobot-physics", n_step=2)
    assert mine.config.n_step == 2 and mine.config.lr == preset["lr"]
    assert DQN("acrobot-physics", config=DQNConfig()).config.n_step == DQNConfig.n_step  # a config is taken as is
    assert DQN("cartpole-physics").config == DQNConfig()
    out_dir = tmp_path / "acro"
    assert main(["dqn", "--family", "acrobot-physics", "--out", str(out_dir), "--steps", "64", "--quiet",
                 "--set", "eval_every=0", "--set", "lr=0.002", "--set", "learning_starts=8"]) == 0
    printed = capsys.readouterr().out
    assert "recommended for acrobot-physics: n_step=8, updates_per_step=0.25 (override with --set)" in printed
    saved = json.loads((out_dir / "config.json").read_text())["config"]
    assert (saved["n_step"], saved["updates_per_step"], saved["lr"]) == (8, 0.25, 0.002)


def test_a_run_is_never_overwritten_by_accident_and_resume_keeps_its_settings(tmp_path, capsys):
    run_dir = tmp_path / "nav"
    base = ["train", "--family", "gridnav", "--family-options", "{\"size\": 5}", "--out", str(run_dir), "--quiet",
            "--iterations", "1", "--set", "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "envs_per_task=1",
            "--set", "eval_every=0", "--set", "net.hidden=[8]"]
    assert main(base) == 0
    before = (run_dir / "checkpoint.safetensors").read_bytes()
    assert main(base) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run_dir / "checkpoint.safetensors").read_bytes() == before
    assert main(["train", "--out", str(run_dir), "--resume", "--set", "inner_lr=0.1", "--quiet"]) == 2
    assert "--set cannot change them" in capsys.readouterr().err
    assert main(["train", "--out", str(run_dir), "--resume", "--iterations", "2", "--quiet"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["config"]["iterations"] == 2  # not stale
    assert main([*base, "--overwrite"]) == 0
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1
    (tmp_path / "file").write_text("x")
    assert main([*base[:5], "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err


def test_import_brings_a_users_family_to_the_command_line(tmp_path):
    """README's custom-family section from the command line: --import a file that registers it."""
    example = str(Path(__file__).resolve().parents[1] / "examples" / "custom_family.py")
    run_dir = tmp_path / "corridor"
    out = run("--import", example, "train", "--family", "corridor", "--out", str(run_dir), "--quiet",
              "--iterations", "2", "--set", "n_train_tasks=3", "--set", "n_test_tasks=2", "--set", "envs_per_task=1",
              "--set", "eval_every=0")
    assert out.returncode == 0, out.stderr
    assert json.loads((run_dir / "config.json").read_text())["family"] == "corridor"
    assert run("--import", example, "adapt", str(run_dir), "--steps", "2").returncode == 0
    missing = run("adapt", str(run_dir))  # without the import the family is unknown: say how to get it
    assert missing.returncode == 2 and "--import MODULE" in missing.stderr
    bad = tmp_path / "broken.py"
    bad.write_text("x = 1\nraise RuntimeError('my env is broken')\n")
    out = run("--import", str(bad), "families")
    assert out.returncode == 2 and "RuntimeError: my env is broken" in out.stderr and "broken.py:2" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_environment_variable_and_damaged_checkpoint_metadata_are_one_line(tmp_path):
    import os
    out = subprocess.run([sys.executable, "-m", "metadqn.cli", "families"], capture_output=True, text=True,
                         env={**os.environ, "METADQN_THREADS": "many"})
    assert out.returncode == 2 and "METADQN_THREADS must be an integer" in out.stderr
    from metadqn.checkpoint import load_checkpoint, save_checkpoint
    from metadqn.learner import MAMLDQN
    learner = MAMLDQN("gridnav", algo="maml", net={"hidden": [8]})
    learner.save(tmp_path / "ok.safetensors")
    tensors, meta = load_checkpoint(tmp_path / "ok.safetensors")
    del meta["optimizer"]
    save_checkpoint(tmp_path / "bad.safetensors", tensors, meta)
    out = run("adapt", str(tmp_path / "bad.safetensors"))
    assert out.returncode == 2 and "lacks 'optimizer'" in out.stderr and "Traceback" not in out.stderr
    del tensors["rng/generator"]
    save_checkpoint(tmp_path / "bad2.safetensors", tensors, {**meta, "optimizer": {}})
    out = run("adapt", str(tmp_path / "bad2.safetensors"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
