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
