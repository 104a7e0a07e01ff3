"""edgefold: compress, export, build and measure PyTorch models for edge devices."""

import os

# onnxruntime >= 1.32's POSIX builds start a telemetry uploader when first used: it leaves a `.ses` session file in
# $TMPDIR and a device id under ~/.cache, on every export check and Jetson-twin run. Off unless the user sets it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
