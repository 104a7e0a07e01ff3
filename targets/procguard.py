"""Child processes that die with their owner.

A twin's emulator or sshd runs in a session of its own (so a terminal's Ctrl-C reaches only edgefold, which then
stops it in order). If edgefold itself is killed outright (SIGKILL, the OOM killer), no cleanup code runs; the
kernel's parent-death signal (PR_SET_PDEATHSIG, set by util-linux `setpriv --pdeathsig` just before it execs the
program) stops the child then. Where setpriv lacks the option, the prefix is empty and only the normal cleanup
applies.
"""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def pdeathsig_prefix(signal_name: str = "TERM") -> tuple[str, ...]:
    """argv prefix that makes the program receive SIG<signal_name> when its parent dies (empty if unavailable)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        usage = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return (setpriv, "--pdeathsig", signal_name, "--") if "--pdeathsig" in usage else ()
