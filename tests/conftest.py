import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # CI has 2 cores; tiny tensors run fastest on one thread and results are reproducible.
    torch.set_num_threads(1)
    yield
