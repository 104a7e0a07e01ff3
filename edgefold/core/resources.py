"""Files edgefold ships besides its Python code: the firmware C sources (package `edgefold.firmware`, the
repository's firmware/ folder) and the script the Jetson runs. Found through `importlib.resources`, so an
installed wheel and a source checkout resolve them the same way.

Compilers and `scp` need real paths. Installed wheels and checkouts keep these files on disk and their own
path is returned; only a zipped install is copied out, once per process, and the copy is removed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
from importlib import resources
from pathlib import Path

from edgefold.core.errors import EdgefoldError

FIRMWARE_PACKAGE = "edgefold.firmware"

_copies = contextlib.ExitStack()
atexit.register(_copies.close)


@functools.cache
def resource_path(package: str, name: str = "") -> Path:
    """Filesystem path of `name` (a file or folder, "" for the package folder itself) inside `package`."""
    try:
        ref = resources.files(package)
    except ModuleNotFoundError as e:
        raise EdgefoldError(f"{package} is not installed ({e}); reinstall edgefold") from None
    if name:
        ref = ref.joinpath(name)
    if not ref.is_file() and not ref.is_dir():
        raise EdgefoldError(f"{package} has no {name or 'files'}: the installation is incomplete; reinstall edgefold")
    try:
        return Path(_copies.enter_context(resources.as_file(ref)))
    except OSError as e:  # a zipped folder on a Python that cannot copy folders out (before 3.12)
        raise EdgefoldError(f"cannot read {package}/{name} as files ({e}); install edgefold unzipped") from None


def firmware_dir() -> Path:
    """The firmware sources: runtime/ (the micro runtime), harness/, boards/, tflm/."""
    return resource_path(FIRMWARE_PACKAGE)
