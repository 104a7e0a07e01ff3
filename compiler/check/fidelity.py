"""Fidelity of every exported format against the float PyTorch model, on held-out real data.

Per format: top-1 agreement with float PyTorch (percent of samples with the same argmax), accuracy against the
labels, and the largest absolute difference of the (dequantised) outputs. Runtimes: onnxruntime for ONNX,
ai-edge-litert for TFLite, and the TensorFlow Lite Micro host interpreter for TFLite again (what the MCU runs).

ONNX int8 is run twice too: with onnxruntime's fused int8 kernels ("onnx-int8", what this host's onnxruntime gives)
and with graph optimisation off ("onnx-int8-qdq": every QuantizeLinear/DequantizeLinear runs as written, the
arithmetic the file specifies). They differ where the host's int8 kernels saturate: x86 CPUs without VNNI sum
pairs of u8 x s8 products in 16 bits (pmaddubsw), which overflows for large inputs times large weights, typically in
a first convolution over raw pixels. ARM (Jetson), x86 with VNNI and TensorRT do not saturate.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from edgefold.compiler.check.capture import capture_fd2
from torch import nn

from edgefold.core.errors import EdgefoldError


@dataclass
class FormatFidelity:
    format: str  # "onnx" | "onnx-int8" | "onnx-int8-qdq" | "tflite-int8" | "tflite-int8-tflm"
    runtime: str
    agreement: float  # percent
    accuracy: float | None  # percent (None when the output is not a class score vector)
    max_abs_error: float  # on the model outputs (logits), dequantised
    samples: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def held_out(input_shape: tuple[int, ...]):
    """The digits test split (never used for training or calibration), shaped for the model."""
    from edgefold.compiler import data

    return data.load(tuple(input_shape), "test")


@torch.no_grad()
def torch_outputs(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    outs = [model(x[i : i + batch].contiguous()) for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy().astype(np.float32)


def onnx_outputs(blob: bytes, x: torch.Tensor, batch: int = 64, optimize: bool = True) -> np.ndarray:
    """onnxruntime's outputs; optimize=False runs the graph as written (no fusion of Q/DQ pairs into int8 kernels)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise EdgefoldError(f"onnxruntime cannot load the model: {str(e).strip().splitlines()[0][:300]}") from None
    name = sess.get_inputs()[0].name
    pinned = sess.get_inputs()[0].shape[0]
    if isinstance(pinned, int) and pinned > 0:  # the exporter pinned the batch: feed batches of exactly that size
        batch = pinned
        pad = (-len(x)) % batch
        xs = np.concatenate([x.numpy(), np.repeat(x.numpy()[-1:], pad, 0)]).astype(np.float32) if pad else \
            x.numpy().astype(np.float32)
        out = np.concatenate([sess.run(None, {name: xs[i : i + batch]})[0] for i in range(0, len(xs), batch)])
        return out[: len(x)]
    xs = x.numpy().astype(np.float32)
    return np.concatenate([sess.run(None, {name: xs[i : i + batch]})[0] for i in range(0, len(xs), batch)])


def onnx_qdq_outputs(blob: bytes, x: torch.Tensor) -> np.ndarray:
    """The int8 ONNX model's arithmetic as written: Q/DQ nodes run one by one, no fused int8 kernels."""
    return onnx_outputs(blob, x, optimize=False)


SATURATION_PT = 1.0  # fused int8 agreement this far below the QDQ arithmetic's: the host kernels saturate


def onnx_saturation_note(results: dict[str, FormatFidelity]) -> str | None:
    """A one-line flag when this host's fused onnxruntime int8 kernels agree clearly less than the file's own
    arithmetic (see the module docstring); None otherwise."""
    fused, qdq = results.get("onnx-int8"), results.get("onnx-int8-qdq")
    if fused is None or qdq is None or qdq.agreement - fused.agreement < SATURATION_PT:
        return None
    return (f"onnx-int8: this host's onnxruntime int8 kernels agree {fused.agreement:.2f} % with float, the model's "
            f"QDQ arithmetic {qdq.agreement:.2f} %: the kernels saturate 16-bit sums on x86 without VNNI (ARM, VNNI "
            "and TensorRT do not); export with --onnx-reduce-range (weights in -64..64) if such a host runs it")


def _io_params(blob: bytes) -> tuple[tuple[float, int], tuple[float, int], int]:
    """(input scale, zero point), (output scale, zero point), input rank of an int8 .tflite."""
    from edgefold.compiler.tflite_model import read_tflite

    info = read_tflite(blob)
    tin, tout = info.input_tensors[0], info.output_tensors[0]
    if tin.dtype != "int8" or tout.dtype != "int8" or not tin.scale or not tout.scale:
        raise EdgefoldError(f"expected a full-integer int8 .tflite, got {tin.type_name} input / {tout.type_name} "
                            "output")
    return (tin.scale, tin.zero_point), (tout.scale, tout.zero_point), len(tin.shape)


def quantize_input(x: torch.Tensor, scale: float, zero_point: int) -> np.ndarray:
    """Float NCHW samples -> the int8 NHWC tensor a full-integer .tflite takes (round half away, saturate)."""
    a = x.numpy().astype(np.float32)
    if a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    q = np.round(a / np.float32(scale)) + zero_point
    return np.ascontiguousarray(np.clip(q, -128, 127).astype(np.int8))


def dequantize_output(y: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    out = (y.astype(np.float32) - zero_point) * np.float32(scale)
    if out.ndim == 4:  # NHWC feature map back to the PyTorch layout
        out = out.transpose(0, 3, 1, 2)
    return out


def tflite_outputs(blob: bytes, x: torch.Tensor, reference: bool = False, raw: bool = False) -> np.ndarray:
    """Run the int8 .tflite with ai-edge-litert, one sample at a time (the model has batch 1).

    reference=True uses TFLite's reference kernels (what TFLM ports) instead of the optimised ones / XNNPACK;
    raw=True returns the int8 outputs instead of dequantised ones.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    (s_in, z_in), (s_out, z_out), _ = _io_params(blob)
    try:
        with capture_fd2():  # LiteRT announces its XNNPACK delegate on the C-level stderr
            resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
            it = Interpreter(model_content=bytes(blob), num_threads=2, experimental_op_resolver_type=resolver)
            it.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        raise EdgefoldError(f"LiteRT cannot load the model: {str(e).strip().splitlines()[0][:300]}") from None
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    xq = quantize_input(x, s_in, z_in)
    outs = []
    for i in range(len(xq)):
        it.set_tensor(i_in, xq[i : i + 1])
        it.invoke()
        outs.append(it.get_tensor(i_out).copy())
    y = np.concatenate(outs)
    return y if raw else dequantize_output(y, s_out, z_out)


def tflm_outputs(blob: bytes, x: torch.Tensor) -> np.ndarray:
    """Run the int8 .tflite on the TFLM host interpreter (the kernels the MCU firmware runs)."""
    from edgefold.compiler.check.tflm import tflm_invoke

    (s_in, z_in), (s_out, z_out), _ = _io_params(blob)
    return dequantize_output(tflm_invoke(blob, quantize_input(x, s_in, z_in)), s_out, z_out)


def compare(fmt: str, runtime: str, ref: np.ndarray, out: np.ndarray, labels: np.ndarray,
            seconds: float = 0.0) -> FormatFidelity:
    if out.shape != ref.shape:
        raise EdgefoldError(f"{fmt}: output shape {out.shape} differs from PyTorch's {ref.shape}")
    r, o = ref.reshape(len(ref), -1), out.reshape(len(out), -1)
    agree = float((r.argmax(1) == o.argmax(1)).mean() * 100) if len(r) else 0.0
    acc = float((o.argmax(1) == labels).mean() * 100) if len(o) and r.shape[1] > 1 and (labels >= 0).all() else None
    err = float(np.abs(r - o).max()) if r.size else 0.0
    return FormatFidelity(fmt, runtime, round(agree, 4), None if acc is None else round(acc, 4), err, len(r),
                          round(seconds, 3))


RUNNERS = {
    "onnx": ("onnxruntime", onnx_outputs),
    "onnx-int8": ("onnxruntime", onnx_outputs),
    "onnx-int8-qdq": ("onnxruntime, QDQ as written", onnx_qdq_outputs),
    "tflite-int8": ("ai-edge-litert", tflite_outputs),
    "tflite-int8-tflm": ("tflite-micro host", tflm_outputs),
}


def check_fidelity(model: nn.Module, input_shape: tuple[int, ...], artifacts: dict[str, bytes],
                   x: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                   on_format=None) -> dict[str, FormatFidelity]:
    """Fidelity of each artifact ({"onnx": bytes, "onnx-int8": ..., "tflite-int8": ...}) vs float PyTorch.

    A "tflite-int8" artifact is checked twice: with LiteRT ("tflite-int8") and on TFLM ("tflite-int8-tflm"); an
    "onnx-int8" one with onnxruntime's fused kernels ("onnx-int8") and as written ("onnx-int8-qdq").
    Uses the digits test split unless `x`/`labels` are given.
    """
    if x is None:
        split = held_out(input_shape)
        x, labels = split.x, split.y
    x = x.contiguous()
    y = labels.numpy() if labels is not None else np.full(len(x), -1)
    t0 = time.perf_counter()
    ref = torch_outputs(model, x)
    results = {"torch": compare("torch", "pytorch", ref, ref, y, time.perf_counter() - t0)}
    jobs = [(f, f) for f in ("onnx", "onnx-int8", "tflite-int8") if f in artifacts]
    if "onnx-int8" in artifacts:
        jobs.insert(jobs.index(("onnx-int8", "onnx-int8")) + 1, ("onnx-int8-qdq", "onnx-int8"))
    if "tflite-int8" in artifacts:
        jobs.append(("tflite-int8-tflm", "tflite-int8"))
    for fmt, key in jobs:
        if on_format is not None:
            on_format(fmt)
        runtime, fn = RUNNERS[fmt]
        t0 = time.perf_counter()
        out = fn(artifacts[key], x)
        results[fmt] = compare(fmt, runtime, ref, out, y, time.perf_counter() - t0)
    return results
