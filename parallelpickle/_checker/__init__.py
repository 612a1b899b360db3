"""The compatibility checker: will an object travel to a worker, and if not, why?

Public names (re-exported by :mod:`parallelpickle`): :func:`check`,
:func:`explain`, :class:`Report`, :class:`Problem`. One concern per module:

- ``_trial``   dumps and loads exactly as each transport does, cheaply
- ``_resolve`` which globals a spawned or forkserver worker could not import
- ``_walk``    the path to the culprit, following pickle's own decomposition
- ``_rules``   each known cause: how it is recognised, why, what to do
- ``_report``  Report and Problem, the table and the JSON form
- ``_verify``  the real load in a fresh worker (``verify=True``)
- ``_check``   check() and explain(), which tie these together
"""

from __future__ import annotations

from ._check import check, explain
from ._report import Problem, Report

__all__ = ["Problem", "Report", "check", "explain"]
