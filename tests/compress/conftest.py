import pytest


@pytest.fixture(scope="module")
def mnist():
    """(train, test) splits of the embedded mnist5k."""
    from edgekit.calibration import load_dataset

    return load_dataset("mnist5k", split="train"), load_dataset("mnist5k", split="test")
