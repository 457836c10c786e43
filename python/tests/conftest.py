"""The real models python/test.sh converts (tools/test-models.sh): EDGELM_SMOLLM, EDGELM_MINILM."""

import os

import pytest

import edgelm


def _path(var: str) -> str:
    path = os.environ.get(var)
    if not path or not os.path.isfile(path):
        pytest.fail(f"${var} must name a packed model: run python/test.sh")
    return path


@pytest.fixture(scope="session")
def smollm() -> edgelm.Model:
    return edgelm.Model(_path("EDGELM_SMOLLM"), context=512, threads=2)


@pytest.fixture(scope="session")
def minilm() -> edgelm.Model:
    return edgelm.Model(_path("EDGELM_MINILM"), threads=2)
