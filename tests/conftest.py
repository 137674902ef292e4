import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # CI has 2 cores; tiny tensors run fastest on one thread and results are reproducible.
    torch.set_num_threads(1)
    yield


@pytest.fixture
def outer_loss_calls(monkeypatch):
    """Every call of meta-training's ``outer_losses`` as ``(support, query)``, recorded (and run)."""
    from metadqn.meta import iteration
    calls = []
    real = iteration.outer_losses

    def spy(adapter, support, query, **kw):
        calls.append((support, query))
        return real(adapter, support, query, **kw)
    monkeypatch.setattr(iteration, "outer_losses", spy)
    return calls
