"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class EdgefoldError(Exception):
    """A problem with the user's input or environment (bad flag, missing file, missing toolchain).

    Anything else that escapes is a bug and keeps its traceback.
    """

    exit_code = 2


class ToolchainMissing(EdgefoldError):
    """An external program is not installed; the message says which package provides it."""

    exit_code = 3


class DeviceError(EdgefoldError):
    """A device (real or emulated) misbehaved: timeout, garbage, reset, vanished port, CRC mismatch."""

    exit_code = 4
