"""The pool's ``initializer`` on Dask: a worker plugin that runs it in each worker process.

Scope: ``Pool(backend="dask", initializer=...)``. The plugin carries the
initializer and its arguments as the bytes the pool's transport made (as
``run_chunk`` carries tasks), so Dask never serializes the user's objects::

    parent:  Codec dumps (fn, args) ─▶ InitializerPlugin(payload) ─▶ client.register_plugin
    worker:  setup(): Codec loads ─▶ fn(*args)     (every worker, and every one that joins later)
             on failure: the exception, dumped with the transport, inside InitializerFailed
    parent:  register_plugin raises InitializerFailed ─▶ the pool is broken with the loaded exception

This module imports ``distributed`` (the plugin must subclass its
``WorkerPlugin``); it is imported only when a Dask pool has an initializer.
"""

from __future__ import annotations

import pickle
from typing import Any

from distributed import WorkerPlugin

from ._transports import Codec
from ._worker import dump_exception

__all__ = ["InitializerFailed", "InitializerPlugin", "load_failure"]


class InitializerFailed(Exception):
    """Raised by the plugin in a worker; carries the initializer's exception as transport bytes."""

    def __init__(self, tag: str, data: bytes) -> None:
        super().__init__(tag, data)
        self.tag = tag
        self.data = data

    def __str__(self) -> str:
        return "the pool's initializer raised in a Dask worker"


class InitializerPlugin(WorkerPlugin):  # type: ignore[misc, unused-ignore]  # untyped in some versions
    """Runs the initializer once in each Dask worker, from transport-made bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def setup(self, worker: Any) -> None:
        codec, (fn_tag, fn_bytes, args_tag, args_bytes) = pickle.loads(self.payload)
        try:
            fn = codec.loads(fn_tag, fn_bytes)
            args = codec.loads(args_tag, args_bytes)
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, with its traceback
            tag, data = dump_exception(codec, exc)
            raise InitializerFailed(tag, data) from None


def load_failure(codec: Codec, failed: InitializerFailed) -> BaseException:
    """The initializer's own exception (its remote traceback as ``__cause__``)."""
    try:
        loaded: BaseException = codec.loads(failed.tag, failed.data)
    except Exception as why:  # noqa: BLE001 - an exception that will not load here
        return RuntimeError(f"the initializer failed and its exception cannot be loaded: {why}")
    return loaded
