"""The ``parallelpickle`` command line.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``; this module only wires them together. Exit codes: 0 on
success, 1 when the command's answer is "no" (a check that fails), 2 on usage
errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand name -> module implementing it.
COMMANDS: dict[str, str] = {
    "bench": "parallelpickle._cli_bench",
    "check": "parallelpickle._cli_check",
    "inspect": "parallelpickle._cli_inspect",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parallelpickle",
        description="Map functions over worker processes with the serializer you choose; "
        "check what will pickle; measure what it costs.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"parallelpickle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    code: int = module.run(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
