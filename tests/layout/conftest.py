"""The layout tests run on one thread: two cores shared with other jobs only oversubscribe."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    torch.set_num_threads(1)
