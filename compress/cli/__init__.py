"""The ``compress`` command.

Each subcommand lives in its own module in this package and defines ``register(subparsers)``,
which adds its parser and sets ``run=<callable(args) -> int | None>`` as a default, and ``SUMMARY``, its line in
``compress --help``. Modules are discovered, so adding a command means adding a file; only the command being run
is built. The command line starts without importing torch: a module imports nothing of the library at its top,
``register`` names library settings by reference (``"compress.train.config:TrainConfig"``, read from the source by
:mod:`compress.cli._source`), and the library is imported inside ``run``. A command parses, makes one library call and prints what
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
from typing import Iterable, Sequence

from compress import __version__

__all__ = ["build_parser", "main"]


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``compress`` parser. ``commands``: the subcommands to build whole (None: all); the others get only their
    name and one-line summary (each module's ``SUMMARY``), which is all ``compress --help`` shows, so the command
    line starts without building, or importing the library for, the commands it will not run."""
    parser = argparse.ArgumentParser(
        prog="compress",
        description="Build, profile, train, compress and study small image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"compress {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = None if commands is None else set(commands)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        name = info.name.replace("_", "-")
        if wanted is None or name in wanted:
            module.register(sub)
        else:
            sub.add_parser(name, help=module.SUMMARY, add_help=False)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (``compress`` itself takes none with a
    value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)
    parser = build_parser([] if command is None else [command])
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


