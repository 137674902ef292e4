"""Devices: a run trained on a GPU evaluates on a machine without one, and — where this
machine has CUDA — every algorithm trains, adapts, evaluates and saves there, with the same
losses and meta-gradients as on the CPU. (CI has no GPU: the CUDA tests are skipped there and
run with `pytest tests/test_devices.py` on a machine that has one.)"""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch.func import vmap

import metadqn
from metadqn.adaptation import adapt_batch, new_task_data, sample_support
from metadqn.checkpoint import load_checkpoint, save_checkpoint
from metadqn.dqn_agent import DQNConfig
from metadqn.learner import MAMLDQN
from metadqn.meta.config import MetaConfig
from metadqn.meta.iteration import make_adapter

TINY = dict(iterations=1, n_train_tasks=3, n_test_tasks=2, envs_per_task=2, query_batch=16, eval_every=0,
            checkpoint_every=0, net={"hidden": [16]}, model_hidden=[16], seed=3)
ALGOS = ["context", "encoder", "blr", "maml", "fomaml", "metasgd", "reptile"]
# gridnav's recommendation gives context MAML a pool of several starts' ends (context_pool) and a
# Q-network that reads t / H (time_feature), both added since the first GPU check; PLAIN is one start
PLAIN = {"context_starts": 1, "context_pool": 1, "time_feature": False}
CASES = [(a, {}) for a in ALGOS] + [("context", PLAIN)]
GRADIENT_CASES = [("context", {}), ("context", PLAIN), ("encoder", {}), ("blr", {}), ("maml", {})]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _family():
    return metadqn.make_family("gridnav", size=5)


def _as_if_trained_on_cuda(path):
    """Rewrite a CPU checkpoint as a CUDA run would have written it: its config names cuda and
    its generator state is a CUDA generator's (16 bytes, not the CPU's 5,056)."""
    tensors, meta = load_checkpoint(path)
    meta["config"]["device"] = "cuda"
    tensors["rng/generator"] = torch.zeros(16, dtype=torch.uint8)
    save_checkpoint(path, tensors, meta)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback of a machine without CUDA")
def test_a_run_trained_on_a_gpu_loads_evaluates_and_resumes_on_a_machine_without_one(tmp_path):
    learner = MAMLDQN(_family(), algo="context", **TINY)
    learner.meta_train(progress=False)
    path = tmp_path / "checkpoint.safetensors"
    learner.save(path)
    _as_if_trained_on_cuda(path)

    with pytest.warns(UserWarning, match="trained on cuda; this machine has no CUDA, so it is loaded on the CPU"):
        loaded = MAMLDQN.load(path)
    assert loaded.device.type == "cpu" and loaded.moved_from == "cuda"
    for k, v in learner.params.items():
        assert torch.equal(loaded.params[k], v), k
    nr = loaded.adaptation_returns(loaded.test_tasks, steps=(0, 2), runs=1)["nr"]
    assert set(nr) == {0, 2} and all(torch.isfinite(v).all() for v in nr.values())
    with pytest.warns(UserWarning, match="its random streams start afresh from the seed"):
        loaded.meta_train(iterations=2, progress=False)
    assert loaded.iteration == 2
    with pytest.raises(ValueError, match="no CUDA"):  # asked for by name, it is still an error
        MAMLDQN.load(path, device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback of a machine without CUDA")
def test_the_command_line_says_in_one_line_that_a_gpu_run_is_evaluated_on_the_cpu(tmp_path):
    run = tmp_path / "run"
    train = ["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--out", str(run), "--quiet",
             "--iterations", "1", "--set", "n_train_tasks=2", "--set", "n_test_tasks=1", "--set", "eval_every=0",
             "--set", "net.hidden=[8]"]
    assert subprocess.run([sys.executable, "-m", "metadqn.cli", *train], capture_output=True).returncode == 0
    _as_if_trained_on_cuda(run / "checkpoint.safetensors")
    out = subprocess.run([sys.executable, "-m", "metadqn.cli", "adapt", str(run), "--steps", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("metadqn: note: ") and "loaded on the CPU" in out.stderr


@cuda
@pytest.mark.parametrize("algo,extra", CASES)
def test_every_algorithm_trains_adapts_and_saves_on_cuda_and_the_run_loads_on_the_cpu(algo, extra, tmp_path):
    learner = MAMLDQN(_family(), algo=algo, device="cuda", **{**TINY, "iterations": 2, **extra})
    learner.meta_train(progress=False)
    assert all(v.device.type == "cuda" for v in learner.params.values())
    res = learner.adaptation_returns(learner.test_tasks, steps=(0, 1), runs=2)
    assert all(torch.isfinite(v).all() for v in res["return"].values())
    path = tmp_path / "checkpoint.safetensors"
    learner.save(path)
    again = MAMLDQN.load(path)  # on the device it was trained on, random streams included
    assert again.device.type == "cuda" and again.moved_from is None
    again.meta_train(iterations=3, progress=False)
    learner.meta_train(iterations=3, progress=False)
    for k, v in learner.params.items():
        assert torch.equal(again.params[k], v), k  # resume on the same device is bit-exact
    on_cpu = MAMLDQN.load(path, device="cpu")
    assert on_cpu.moved_from == "cuda"
    obs = torch.rand(7, *learner.family.observation_space.shape)  # the learner's view (t / H where it reads it)
    on_gpu = MAMLDQN.load(path).adapter()  # the saved run (learner has trained on since)
    a_cpu = on_cpu.adapter()
    q_gpu = on_gpu.q_values(on_gpu.prior(), obs.cuda()).cpu()
    assert torch.allclose(q_gpu, a_cpu.q_values(a_cpu.prior(), obs), atol=1e-5)


@cuda
@pytest.mark.parametrize("algo,extra", GRADIENT_CASES)
def test_adaptation_and_the_meta_gradient_on_cuda_equal_the_cpus(algo, extra):
    cpu = MAMLDQN(_family(), algo=algo, **TINY, **extra)
    gpu = MAMLDQN(_family(), algo=algo, device="cuda", **TINY, **extra)
    family = cpu.family  # the learner's view (with t / H where time_feature says so)
    for k, v in cpu.params.items():  # a seed gives the same network on every device
        assert torch.equal(gpu.params[k].cpu(), v), k
    train, _ = family.split(3, 0, seed=0)
    buf, gen = new_task_data(family, train, runs_per_task=2, episodes=1, adapter=None, seed=5)
    batch = sample_support(buf, cpu.adapter().support, episodes=1, generator=gen)
    grads = {}
    for name, learner in (("cpu", cpu), ("cuda", gpu)):
        dev = learner.device
        data = type(batch)(*(t.to(dev) for t in batch))
        # the training-time adapter, with the graph back to θ
        adapter = make_adapter(learner.net, learner.state, learner.config, learner.horizon, learner.model,
                               learner.encoder)
        states = adapt_batch(adapter, data, learner.config.inner_steps or 1)
        target = {k: v.detach() for k, v in learner.state.params.items()}
        loss = vmap(lambda s, q: adapter.outer_loss(s, q, target=target))(states, data).mean()
        params = learner.state.params
        g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        grads[name] = (loss.detach().cpu(), {k: gk.cpu() for k, gk in zip(params, g) if gk is not None})
    assert torch.allclose(grads["cpu"][0], grads["cuda"][0], rtol=1e-4, atol=1e-5)
    assert grads["cpu"][1].keys() == grads["cuda"][1].keys() and grads["cpu"][1]
    for k, g in grads["cpu"][1].items():
        assert torch.allclose(g, grads["cuda"][1][k], rtol=1e-3, atol=1e-5), k


@cuda
def test_the_command_line_trains_and_evaluates_on_cuda_and_evaluates_that_run_without_it(tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "-m", "metadqn.cli"]
    train = ["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--out", str(run), "--quiet",
             "--iterations", "2", "--device", "cuda", "--set", "n_train_tasks=2", "--set", "n_test_tasks=2",
             "--set", "eval_every=0"]
    out = subprocess.run([*base, *train], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    evaluate = ["evaluate", str(run), "--baselines", "scratch,multitask", "--multitask-steps", "2000", "--budgets", "1",
                "--steps", "0,1", "--seeds", "2", "--online", "--quiet"]
    out = subprocess.run([*base, *evaluate], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    no_gpu = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([*base, "adapt", str(run), "--steps", "1"], capture_output=True, text=True, env=no_gpu)
    assert out.returncode == 0, out.stderr
    assert "loaded on the CPU" in out.stderr
    dqn = ["dqn", "--family", "gridnav", "--family-options", '{"size": 5}', "--out", str(tmp_path / "dqn"),
           "--device", "cuda", "--quiet", "--set", "total_steps=2000", "--set", "learning_starts=200"]
    out = subprocess.run([*base, *dqn], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_device_auto_is_the_gpu_where_there_is_one_and_the_cpu_elsewhere_and_runs_save_what_they_used(tmp_path):
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert MetaConfig(device="auto").device == here and DQNConfig(device="auto").device == here
    run = tmp_path / "run"
    train = ["train", "--family", "gridnav", "--family-options", '{"size": 5}', "--out", str(run), "--quiet",
             "--iterations", "1", "--device", "auto", "--set", "n_train_tasks=2", "--set", "n_test_tasks=1",
             "--set", "eval_every=0", "--set", "net.hidden=[8]"]
    out = subprocess.run([sys.executable, "-m", "metadqn.cli", *train], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "config.json").read_text())["config"]["device"] == here  # the device used, not "auto"
    loaded = MAMLDQN.load(run / "checkpoint.safetensors", device="auto")
    assert loaded.device.type == here and loaded.moved_from is None
    with pytest.raises(ValueError, match="or 'auto', got 'gpu'"):
        MetaConfig(device="gpu")
