"""``parallelpickle bench``: serializers, compression and pools, with a report.

Parses the options, checks them before anything runs, hands a
:class:`~parallelpickle._bench.suite.Config` to the suite, then prints the
terminal report and writes ``--json`` / ``--plot`` when asked. The default
(full) run takes several minutes on two cores and shows a progress bar;
``--quick`` takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from ._bench.suite import SECTIONS

    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="measure what each serializer and pool costs",
        description="Measure serializers x payloads, compression, and pools x workloads; "
        "print tables with ratios to C pickle and test what tutorials claim.",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller payloads and fewer rounds (about a minute)")
    size.add_argument("--scale", choices=("tiny", "quick", "full"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", metavar="PATH", help="write every figure, with machine and versions, as JSON")
    p.add_argument("--plot", metavar="PATH", help="write a PNG chart (needs matplotlib)")
    p.add_argument("--workers", type=int, default=2, help="worker processes per pool (default 2)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> str | None:
    """The first problem with the options, or None; checked before anything runs."""
    if args.workers < 1:
        return f"--workers must be >= 1, got {args.workers}"
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            return f"{option} {path}: cannot write there (no such folder, or not writable)"
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return "--plot needs matplotlib: pip install 'parallelpickle[bench]'"
    return None


def run(args: argparse.Namespace) -> int:
    from ._bench import answers, report
    from ._bench.payloads import SCALES
    from ._bench.suite import Config, run_suite

    problem = _check(args)
    if problem:
        print(f"parallelpickle bench: error: {problem}", file=sys.stderr)
        return 2
    scale = SCALES[args.scale or ("quick" if args.quick else "full")]
    progress = not args.no_progress
    if progress:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            progress = False
    config = Config(scale, workers=args.workers, only=tuple(args.only), progress=progress)
    try:
        res = run_suite(config)
    except KeyboardInterrupt:
        # The pools are already closed (run_pools closes them on the way out); no traceback for a Ctrl-C.
        print("parallelpickle bench: interrupted", file=sys.stderr)
        return 130
    found = answers.answer_all(res)
    print(report.text(res, found))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_json(res, found), f, indent=1)
        print(f"\nJSON written to {args.json}")
    if args.plot:
        report.plot(res, args.plot)
        print(f"chart written to {args.plot}")
    return 0
