"""The ``chargetwin`` command line.

Exit codes, for every subcommand: 0 success, 1 the checked system broke the
contract, 2 bad input or usage (with a message naming what and where; never
a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._check_cmd import add_check_parser
from ._model_cmd import add_model_parser
from ._network_cmd import add_network_parser
from ._report_cmd import add_report_parser
from ._run_cmd import add_run_parser
from ._serve_cmd import add_serve_parser
from ._standin_cmd import add_standin_parsers
from ._token_cmd import add_token_parser
from ._validate_cmd import add_validate_parser

__all__ = ["EXIT_OK", "EXIT_USAGE", "EXIT_VIOLATIONS", "build_parser", "main"]

EXIT_OK = 0
EXIT_VIOLATIONS = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="chargetwin",
        description="Digital twin and contract-test harness for an EV-charging system "
                    "(mobile app, REST backend, OCPP CMS, Redis pub/sub, WebSocket gateway).",
        epilog="Exit codes: 0 conform, 1 contract violations, 2 bad input or usage.",
    )
    parser.add_argument("--version", action="version", version=f"chargetwin {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    add_check_parser(commands)
    add_model_parser(commands)
    add_network_parser(commands)
    add_report_parser(commands)
    add_run_parser(commands)
    add_serve_parser(commands)
    add_standin_parsers(commands)
    add_token_parser(commands)
    add_validate_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("chargetwin: interrupted", file=sys.stderr)
        return 130
    return code
