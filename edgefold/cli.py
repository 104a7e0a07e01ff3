"""`edgefold` command line. Each sub-command lives in edgefold/commands/<name>.py as a thin shell over
edgefold.api (arguments -> request -> API call -> rendered result); this file only wires them up and turns user
errors into one line and an exit code."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading
from typing import NoReturn

from edgefold.core.errors import EdgefoldError

# Order is the order shown in --help.
# The environment refused a write: the user's to fix (free space, another folder), not a bug in edgefold.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
COMMANDS = ["zoo", "train", "compress", "finetune", "export", "codegen", "targets", "build", "deploy", "bench", "hil",
            "report"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgefold", description="Compress a PyTorch model, export it and run it on an edge device.")
    p.add_argument("--version", action="version", version="edgefold 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"edgefold.commands.{name}").register(sub)
    return p


class Terminated(BaseException):
    """SIGTERM as an exception, like KeyboardInterrupt for SIGINT: staging folders, twins and temp files are cleaned
    up on the way out (a BaseException, so that `except Exception` in library code cannot swallow it)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _signal_cause(e: BaseException) -> type[BaseException] | None:
    """KeyboardInterrupt or Terminated when one is in e's chain of causes, else None."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, (KeyboardInterrupt, Terminated)):
            return type(cur) if isinstance(cur, Terminated) else KeyboardInterrupt
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    try:
        rc = args.func(args)
    except EdgefoldError as e:
        print(f"edgefold {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in _WRITE_ERRNOS:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"edgefold {args.command}: error: cannot write{where}: {e.strerror}", file=sys.stderr)
        return EdgefoldError.exit_code
    except KeyboardInterrupt:
        print(f"edgefold {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"edgefold {args.command}: terminated", file=sys.stderr)
        return 143
    except Exception as e:
        # a signal that lands while Python runs a hook which wraps exceptions (a class body's __set_name__ during
        # an import raises RuntimeError from it) is still the user's interrupt, not a crash
        signalled = _signal_cause(e)
        if signalled is None:
            raise
        said, code = ("terminated", 143) if signalled is Terminated else ("interrupted", 130)
        print(f"edgefold {args.command}: {said}", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
