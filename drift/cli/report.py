"""The ``drift report`` subcommand: rebuild a study's self-contained HTML report from its folder."""

from __future__ import annotations

import argparse


def register(sub) -> dict:
    """Add the parser of ``drift report``; return its handler by name."""
    p = sub.add_parser("report", help="build the self-contained HTML report of a study folder (opens offline)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the study folder written by `drift run` (holds study.json)")
    p.add_argument("--out", metavar="FILE", help="HTML file to write (default RUN_DIR/report/index.html); "
                   "the tables behind the figures go beside it")
    return {"report": cmd_report}


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report and print its path."""
    from drift.report import build_report

    print(build_report(args.run_dir, args.out))
    return 0
