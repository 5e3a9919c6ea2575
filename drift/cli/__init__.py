"""The ``drift`` command: thin subcommands that parse arguments and call library functions.

User errors print one line on stderr and exit with code 2. Each module of this package registers a group of
subcommands.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from drift.errors import DriftError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from drift.cli import analysis, judging, report, scale, study, training

    parser = _Parser(prog="drift", description="polydrift: safety drift across languages")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands: dict = {}
    for module in (analysis, judging, training, study, scale, report):
        commands |= module.register(sub)
    return parser, commands


def _version() -> str:
    from drift._version import __version__

    return f"polydrift {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``drift`` command; returns the exit code."""
    parser, commands = _build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        return commands[args.command](args)
    except DriftError as e:
        print(f"drift: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drift: interrupted; an extraction can continue with --resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `drift info X | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0

