"""parallelpickle: map functions over worker processes with the serializer you choose.

Public API (everything else is private)::

    from parallelpickle import Pool

    with Pool(workers=4, transport="auto") as pool:
        pool.map(lambda x: x * 2, range(10))
"""

from __future__ import annotations

from ._checker import Problem, Report, check, explain
from ._errors import (
    ParallelPickleError,
    PoolClosedError,
    RemoteError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from ._pool import Pool
from ._shm import Shared
from ._stats import PoolStats
from ._transports import Transport

__version__ = "0.1.0"

__all__ = [
    "ParallelPickleError",
    "Pool",
    "PoolClosedError",
    "PoolStats",
    "Problem",
    "Report",
    "RemoteError",
    "SerializationError",
    "Shared",
    "TaskTimeoutError",
    "Transport",
    "WorkerCrashedError",
    "__version__",
    "check",
    "explain",
]
