"""ONNX int8: onnxruntime static quantisation, QDQ format, per-channel int8 weights, int8 activations."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgefold.core.errors import EdgefoldError


def _reader(input_name: str, calib: np.ndarray, batch: int = 16):
    from onnxruntime.quantization import CalibrationDataReader

    class _Batches(CalibrationDataReader):
        """Feeds the calibration array in batches (the float model has a dynamic batch dimension)."""

        def __init__(self) -> None:
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= len(calib):
                return None
            out = {input_name: calib[self._i : self._i + batch]}
            self._i += batch
            return out

        def rewind(self) -> None:
            self._i = 0

    return _Batches()


def export_onnx_int8(onnx_float: bytes, calib_data: torch.Tensor | np.ndarray, reduce_range: bool = False) -> bytes:
    """Quantise a float ONNX model (from export_onnx) with `calib_data` (N x the model's input shape, float).

    reduce_range: weights in -64..64 (about 7 bits). Costs precision everywhere, but no 16-bit pair sum of u8 x s8
    products can then overflow, so x86 CPUs without VNNI compute what the file specifies (see check.fidelity)."""
    import onnx
    from edgefold.compiler.export.onnx import fixed_batch
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load_from_string(onnx_float)
    input_name = model.graph.input[0].name
    calib = calib_data.detach().cpu().numpy() if isinstance(calib_data, torch.Tensor) else np.asarray(calib_data)
    calib = np.ascontiguousarray(calib, dtype=np.float32)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    want = tuple(d.dim_value for d in dims[1:])
    if calib.ndim != len(dims) or tuple(calib.shape[1:]) != want:
        raise EdgefoldError(
            f"calibration data has shape {calib.shape}; the ONNX model wants N x {'x'.join(map(str, want))}")
    batch = fixed_batch(model) or 16
    if len(calib) % batch:  # a pinned batch takes whole batches only
        calib = calib[: len(calib) - len(calib) % batch] if len(calib) >= batch else np.repeat(calib, batch, 0)[:batch]
    with tempfile.TemporaryDirectory(prefix="edgefold-ort-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_float)
        logging.disable(logging.WARNING)  # ORT logs advice ("consider pre-processing") on the root logger
        try:
            quantize_static(str(src), str(dst), _reader(input_name, calib, batch), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=reduce_range, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        except Exception as e:  # noqa: BLE001 - quantiser failures become one line
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise EdgefoldError(f"ONNX int8 quantisation failed: {first}") from None
        finally:
            logging.disable(logging.NOTSET)
        return dst.read_bytes()
