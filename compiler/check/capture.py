"""Capture what C/C++ libraries write to file descriptor 2.

TFLM prints arena usage and allocation failures with `MicroPrintf` and the LiteRT converter logs through
absl, both straight to the C-level stderr, where `sys.stderr` redirection cannot see them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    text: str = ""


@contextlib.contextmanager
def capture_fd2() -> Iterator[Captured]:
    """Redirect fd 2 to a temp file for the block; the text is in the yielded object afterwards."""
    out = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            out.text = f.read().decode(errors="replace")
