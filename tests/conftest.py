"""Suite-wide isolation: CLI commands run in-process here, and `og quickstart` / `og ablate` quiet the
loggers of the libraries (a CLI process ends after that); each test starts with the levels as they were."""

import logging

import pytest

_QUIETED = ("og", "DeepSpeed", "deepspeed", "torch")


@pytest.fixture(autouse=True)
def _restore_logger_levels():
    levels = {name: logging.getLogger(name).level for name in _QUIETED}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
