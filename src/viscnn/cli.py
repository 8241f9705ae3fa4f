"""The `viscnn` command. Each subcommand lives in `viscnn.commands.<name>` and registers itself.

A ViscnnError (a fault in the user's input) prints as one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from viscnn.errors import ViscnnError

COMMANDS = ["demo", "check", "graph", "score", "circuit", "train", "data", "subfeatures", "composition", "evaluate", "serve", "visualize", "prepare", "plan", "examples", "kernels", "activations"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="viscnn", description="A CNN microscope.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"viscnn.commands.{name}").register(subparsers)
    return parser


def one_line(text: str) -> str:
    """`text` with control characters escaped (a newline in a file name shows as \\n): an error is one line."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ViscnnError as exc:
        print(f"viscnn {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"viscnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
