"""How tiny_int8.tflite was made (kept so it can be regenerated): a 3-op full-integer model from the real exporter.

    .venv/bin/python tests/targets/data/make_tiny.py
"""

from pathlib import Path

import torch
from edgefold.compiler.export.tflite import export_tflite_int8

if __name__ == "__main__":
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    blob = export_tflite_int8(m, torch.randn(1, 1, 8, 8), torch.randn(8, 1, 8, 8))
    (Path(__file__).parent / "tiny_int8.tflite").write_bytes(blob)
