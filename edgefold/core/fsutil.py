"""Atomic file output: write to a temp file in the same directory, then rename.

A failed or interrupted write never leaves a half-written artifact and never touches an earlier one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgefold.core.errors import EdgefoldError

_UMASK = os.umask(0)
os.umask(_UMASK)


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) and check that it is writable; raise a one-line error otherwise."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgefoldError(f"cannot create output folder {p}: {e.strerror}") from None
    if not os.access(p, os.W_OK):
        raise EdgefoldError(f"output folder {p} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `dest`; on success it is renamed onto `dest`, on error removed."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; results should be as readable as any other file
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    return write_bytes(dest, text.encode())


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__fspath__"):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def staged_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder; on success its files are moved into `dest` (each by rename).

    Several artifacts that belong together (model.onnx, model_int8.tflite, check.json) appear only
    once every one of them was produced.
    """
    dest = ensure_dir(dest)
    stage = Path(tempfile.mkdtemp(prefix=".stage.", dir=dest))
    try:
        yield stage
        for item in sorted(stage.rglob("*")):
            if item.is_file():
                target = dest / item.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# ------------------------------------------------------------------------------------------- whole output folders

STAGE_MARK = ".partial-"  # .<name>.partial-<pid>-<token>: the temporary sibling an output folder is built in


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(dest: Path) -> None:
    """Remove staging siblings of `dest` left by a process that was killed outright (SIGKILL cannot be cleaned up)."""
    for p in dest.parent.glob(f".{dest.name}{STAGE_MARK}*"):
        try:
            pid = int(p.name[len(dest.name) + len(STAGE_MARK) + 1:].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def check_output_dir(dest: str | os.PathLike, what: str = "output folder") -> Path:
    """Can `dest` be produced as a folder? Checked without creating anything: it is a folder or absent, and the
    nearest existing folder above it is writable (the staging sibling is made there)."""
    p = Path(dest).absolute()
    if p.exists() and not p.is_dir():
        raise EdgefoldError(f"{what} {p} exists and is not a folder")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise EdgefoldError(f"{what} {p} is not writable")
    up = p.parent
    while not up.exists():
        up = up.parent
    if not up.is_dir():
        raise EdgefoldError(f"cannot create {what} {p}: {up} is not a folder")
    try:  # a real probe: permission bits say nothing for root, a read-only mount or /proc
        os.rmdir(tempfile.mkdtemp(prefix=".edgefold-probe-", dir=up))
    except OSError as e:
        raise EdgefoldError(f"cannot create {what} {p}: {up} is not writable ({e.strerror or e})") from None
    return p


def check_output_file(dest: str | os.PathLike, what: str = "output file") -> Path:
    """Can the file `dest` be written (atomically, next to itself)? Checked without creating anything."""
    p = Path(dest).absolute()
    if p.is_dir():
        raise EdgefoldError(f"{what} {p} is a folder")
    check_output_dir(p.parent, f"folder of the {what}")
    return p


@contextlib.contextmanager
def staged_output(dest: str | os.PathLike, keep_failed: str | os.PathLike | None = None,
                  replace: tuple[str, ...] = ()) -> Iterator[Path]:
    """Build the output folder `dest` in a temporary sibling and put it in place only when everything succeeded.

    The sibling starts as a copy of what `dest` holds now, less the entries named in `replace` (what the command
    produces anew). On success it takes `dest`'s place in one rename (an atomic exchange where the system has one).
    On any error, Ctrl-C included, `dest` is as it was, byte for byte, folders created for it are removed again, and
    the sibling is deleted, or moved to `keep_failed`/<name>-<time> when that is given.
    """
    import time

    dest = check_output_dir(dest)
    if dest.is_symlink():  # stage next to the real folder: the user's link stays a link
        dest = dest.resolve()
    created: list[Path] = []
    up = dest.parent
    while not up.exists():
        created.append(up)
        up = up.parent
    try:
        for d in reversed(created):
            d.mkdir()
    except OSError as e:
        _remove_created(created)
        raise EdgefoldError(f"cannot create output folder {dest}: {e.strerror}") from None
    _sweep_stale(dest)
    stage = dest.parent / f".{dest.name}{STAGE_MARK}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        try:
            if dest.is_dir():
                top = set(replace)
                shutil.copytree(dest, stage, symlinks=True,
                                ignore=lambda d, names: [n for n in names if Path(d) == dest and n in top])
            else:
                stage.mkdir()
        except OSError as e:
            raise EdgefoldError(f"cannot stage output folder {dest}: {e.strerror or e}") from None
        yield stage
        if dest.is_dir():
            if not _exchange(stage, dest):
                old = stage.with_name(stage.name + ".old")
                os.rename(dest, old)
                os.rename(stage, dest)
                stage = old
            shutil.rmtree(stage, ignore_errors=True)  # now the previous contents
        else:
            os.rename(stage, dest)
    except BaseException as e:
        if keep_failed is not None and stage.is_dir():
            kept = _keep(stage, Path(keep_failed), f"{dest.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            if isinstance(e, EdgefoldError) and kept is not None:
                e.args = (f"{e} (failed stages kept in {kept})",)
        shutil.rmtree(stage, ignore_errors=True)
        _remove_created(created)
        raise


def _keep(stage: Path, keep_dir: Path, name: str) -> Path | None:
    try:
        keep_dir.mkdir(parents=True, exist_ok=True)
        target = keep_dir / name
        n = 1
        while target.exists():
            n += 1
            target = keep_dir / f"{name}-{n}"
        shutil.move(str(stage), str(target))
        return target
    except OSError:
        return None


def _remove_created(created: list[Path]) -> None:
    for d in created:  # innermost first
        with contextlib.suppress(OSError):
            d.rmdir()
