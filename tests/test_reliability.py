"""Interrupts with real signals: SIGINT and SIGTERM finish the iteration, save a checkpoint,
exit 130 with a line saying how to resume, and the resumed run continues from there."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_resume_continues(tmp_path, sig):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "metadqn.cli", "train", "--family", "gridnav", "--family-options",
           '{"size": 5}', "--out", str(run), "--quiet", "--iterations", "100000", "--set", "n_train_tasks=2",
           "--set", "n_test_tasks=1", "--set", "envs_per_task=1", "--set", "eval_every=0",
           "--set", "checkpoint_every=0", "--set", "net.hidden=[8]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "--resume" in err and "Traceback" not in err
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    from metadqn.learner import MAMLDQN
    saved = MAMLDQN.load(run)
    assert saved.iteration == rows[-1]["step"] >= 3  # nothing logged is lost, nothing half-done is kept
    resumed = subprocess.run([sys.executable, "-m", "metadqn.cli", "train", "--out", str(run), "--resume",
                              "--iterations", str(saved.iteration + 2), "--quiet"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, saved.iteration + 3))


def test_stray_temp_files_go_and_an_edited_config_json_is_reported(tmp_path, capsys):
    from metadqn.checkpoint import save_checkpoint
    from metadqn.cli import main
    stray = tmp_path / ".checkpoint.safetensors.abc123.tmp"
    stray.write_bytes(b"")  # what a kill during a save leaves
    save_checkpoint(tmp_path / "checkpoint.safetensors", {"x": __import__("torch").zeros(1)}, {"kind": "t"})
    assert not stray.exists()
    run_dir = tmp_path / "run"
    assert main(["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--out", str(run_dir), "--quiet",
                 "--algo", "maml", "--iterations", "1", "--set", "n_train_tasks=2", "--set", "n_test_tasks=1",
                 "--set", "envs_per_task=1", "--set", "eval_every=0", "--set", "net.hidden=[8]"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    capsys.readouterr()
    assert main(["adapt", str(run_dir), "--steps", "1"]) == 0
    assert "differs" not in capsys.readouterr().err  # untouched: no note
    del config["config"]["outer_lr"]  # a record from before a field existed is not an edit
    (run_dir / "config.json").write_text(json.dumps(config))
    assert main(["adapt", str(run_dir), "--steps", "1"]) == 0
    assert "differs" not in capsys.readouterr().err
    config["config"]["inner_lr"] = 0.01
    (run_dir / "config.json").write_text(json.dumps(config))
    assert main(["adapt", str(run_dir), "--steps", "1"]) == 0
    assert "config.json differs from the checkpoint's settings" in capsys.readouterr().err


def test_tensorboard_has_no_doubled_steps_after_a_resume(tmp_path):
    pytest.importorskip("tensorboard")
    import shutil
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    import metadqn
    def opened_writers() -> int:  # the count an event file's name ends with: this process's writers so far
        SummaryWriter(str(tmp_path / "other")).close()
        (name,) = [p.name for p in (tmp_path / "other").iterdir()]
        shutil.rmtree(tmp_path / "other")
        return int(name.split(".")[-1])
    while True:  # the run's three writers numbered across a digit boundary (…9, …10: the later name sorts first)
        n = opened_writers()
        if len(str(n + 1)) < len(str(n + 3)):
            break
    family = metadqn.make_family("gridnav", size=5)
    train, test = family.split(2, 1, seed=0)
    kw = dict(algo="maml", envs_per_task=1, eval_every=0, checkpoint_every=2, net={"hidden": [8]})
    run = tmp_path / "run"
    metadqn.MAMLDQN(family, iterations=2, **kw).meta_train(train, test_tasks=test, out_dir=run, progress=False)
    shutil.copy(run / "checkpoint.safetensors", tmp_path / "at2.safetensors")
    learner = metadqn.MAMLDQN.load(run)
    learner.meta_train(iterations=3, out_dir=run, progress=False)           # logs step 3 ...
    shutil.copy(tmp_path / "at2.safetensors", run / "checkpoint.safetensors")  # ... then is "killed" before saving
    metadqn.MAMLDQN.load(run).meta_train(iterations=4, out_dir=run, progress=False)
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("query_loss")] == [1, 2, 3, 4]


BROKEN_ENVS = """
import gymnasium as gym
import numpy as np
from metadqn.families import from_gymnasium, register_family


class Shaky(gym.Env):
    def __init__(self, mode="raise"):
        self.mode, self.t = mode, 0
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t == 3 and self.mode == "raise":
            return np.zeros(3), 0.0, False, False, {}[\"oops\"]
        obs = np.full(2, np.nan if self.t == 3 else 0.0, dtype=np.float32)
        return obs, 0.0, False, False, {}


gym.register("Shaky-v0", entry_point=Shaky, max_episode_steps=8)
for mode in ("raise", "nan"):
    register_family(f"shaky-{mode}", lambda mode=mode, **o: from_gymnasium(
        "Shaky-v0", params={"x": (0.0, 1.0)}, setter=lambda env, p: None, name=f"shaky-{mode}",
        make_kwargs={"mode": mode}, **o))
"""


@pytest.mark.parametrize("mode,message", [("raise", "step raised KeyError: 'oops' at "),
                                          ("nan", "step returned a non-finite observation for task")])
def test_errors_inside_a_users_env_are_one_line_naming_the_family_the_call_and_the_place(tmp_path, mode, message):
    plugin = tmp_path / "shaky_envs.py"
    plugin.write_text(BROKEN_ENVS)
    cmd = [sys.executable, "-m", "metadqn.cli", "--import", str(plugin), "train", "--family", f"shaky-{mode}",
           "--out", str(tmp_path / "run"), "--quiet", "--iterations", "1", "--set", "n_train_tasks=2",
           "--set", "n_test_tasks=1", "--set", "envs_per_task=1"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert f"family 'shaky-{mode}'" in out.stderr and message in out.stderr and "Traceback" not in out.stderr
    if mode == "raise":
        assert "shaky_envs.py:21" in out.stderr  # the user's line
        debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:], "--overwrite"], capture_output=True, text=True)
        assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_dqn_interrupt_keeps_the_network_and_small_run_directory_mistakes(tmp_path, capsys):
    run = tmp_path / "dqn"
    proc = subprocess.Popen([sys.executable, "-m", "metadqn.cli", "dqn", "--family", "gridnav", "--out", str(run),
                             "--quiet", "--steps", "10000000", "--set", "eval_every=200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text()):
        time.sleep(0.1)  # training has started: one evaluation row is written
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "the network so far is saved" in err, err
    assert (run / "checkpoint.safetensors").exists()
    from metadqn.cli import main
    from metadqn.runlog import read_metrics
    nav = tmp_path / "nav"
    base = ["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--out", str(nav), "--quiet",
            "--algo", "maml", "--set", "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "envs_per_task=1",
            "--set", "eval_every=0", "--set", "net.hidden=[8]", "--set", "checkpoint_every=1"]
    assert main([*base, "--iterations", "2"]) == 0
    with open(nav / "metrics.jsonl", "a") as fh:  # a kill in the middle of writing a row
        fh.write('{"step": 3, "query_lo')
    capsys.readouterr()
    assert main(["train", "--out", str(nav), "--resume", "--iterations", "3", "--quiet"]) == 0
    assert "dropped a torn last line" in capsys.readouterr().err
    assert [r["step"] for r in read_metrics(nav)] == [1, 2, 3]
    assert main(["adapt", str(nav), "--episodes", "0"]) == 2
    assert "--episodes must be >= 1" in capsys.readouterr().err
    assert main(["train", "--out", str(nav), "--resume", "--iterations", "1", "--quiet"]) == 2
    assert "would go back" in capsys.readouterr().err
