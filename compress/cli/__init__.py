"""The ``compress`` command.

Each subcommand lives in its own module in this package and defines ``register(subparsers)``,
which adds its parser and sets ``run=<callable(args) -> int | None>`` as a default. Modules are
discovered, so adding a command means adding a file. A command parses, makes one library call and prints what
the library renders; options that set a library setting take their default (and the "(default X)" of their help)
from the library (``compress.cli._common.add_field``). Heavy work belongs inside ``run``.

User errors (``ValueError``, ``TypeError``, missing or existing files) and system errors (``OSError``: a full
disk, a read-only folder) print one line,
``compress <command>: error: <message>``, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from compress import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compress",
        description="Build, profile, train, compress and study small image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"compress {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except KeyboardInterrupt:
        print(f"compress {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
            argparse.ArgumentTypeError) as exc:
        print(f"compress {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:   # a full disk, a read-only folder: the system's one line, nothing half-written
        print(f"compress {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(status or 0)


