"""The layout tests run on one thread (the root conftest's `single_thread`)."""
import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread) -> None:
    pass
