"""Where prometheus_client's multi-process mode keeps its files: ``PROMETHEUS_MULTIPROC_DIR``.

Every process of one service (gunicorn's workers, the consumer, the relay, ...) writes its
samples there and the web server's ``/metrics`` adds them up, so all of a service's processes
get the same directory and no other service's. prometheus_client reads the variable when it is
first imported, and writes into the directory from then on: the settings create it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir() -> Path | None:
    """Create the directory named by ``PROMETHEUS_MULTIPROC_DIR``, if one is named."""
    directory = multiprocess_dir()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    return directory


def reset_multiprocess_dir(directory: Path) -> None:
    """Empty ``directory`` before a service's processes start: the samples of an earlier run
    would otherwise be added to this one's."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
