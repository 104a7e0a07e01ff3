"""TFLite int8, full integer (int8 input and output, per-channel int8 weights, int32 bias), NHWC input.

PT2E static quantisation (litert-torch's PT2EQuantizer: min/max activation ranges, symmetric per-channel weights)
on a `torch.export` graph, calibrated on real samples, then lowered by the LiteRT converter, whose STATIC
QDQ mode folds the boundary quantize/dequantize into int8 model inputs and outputs. The model is wrapped by
`to_channel_last_io`, so the .tflite takes NHWC like every TFLite/TFLM image model; the wrapper's permute
cancels against the converter's own NCHW->NHWC transpose, so no TRANSPOSE is left in front of the first conv.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import warnings

import torch
from edgefold.compiler.check.capture import capture_fd2
from edgefold.compiler.export.quantizer import unroll_rnns
from torch import nn

from edgefold.core.errors import EdgefoldError

# litert-torch prints a rich progress log per stage unless told not to; read when it is first imported.
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

CALIB_MAX = 256  # calibration samples used
CALIB_BATCH = 64  # histogram observers cost per call, so calibrate in batches where the graph allows it
OBSERVERS = ("minmax", "histogram")
DEFAULT_OBSERVER = "minmax"  # TFLite's own PTQ convention; within 2 of 360 images of "histogram" on the zoo


def check_calibration(calib_data: torch.Tensor, example_input: torch.Tensor) -> torch.Tensor:
    """Calibration data as a contiguous float32 N x (input shape without batch) tensor, or a one-line error."""
    if not isinstance(calib_data, torch.Tensor):
        raise EdgefoldError(f"calibration data must be a tensor, got {type(calib_data).__name__}")
    if not calib_data.is_floating_point():
        raise EdgefoldError(f"calibration data must be floating point (float32), got {calib_data.dtype}")
    want = tuple(example_input.shape[1:])
    if calib_data.dim() != example_input.dim() or tuple(calib_data.shape[1:]) != want:
        raise EdgefoldError(
            f"calibration data has shape {tuple(calib_data.shape)}; the model wants N x {'x'.join(map(str, want))}"
        )
    if len(calib_data) == 0:
        raise EdgefoldError("calibration data is empty")
    if not torch.isfinite(calib_data).all():
        raise EdgefoldError("calibration data contains NaN or infinite values")
    return calib_data[:CALIB_MAX].to(torch.float32).contiguous()


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """N,C,H,W -> N,H,W,C, contiguous (a strided view would make the exporter add Gather/Transpose)."""
    return x.permute(0, *range(2, x.dim()), 1).contiguous() if x.dim() >= 3 else x.contiguous()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _unsupported_op(text: str) -> str | None:
    """The op name in a converter/export failure, if the message names one."""
    for pat in (r"'(tfl\.[\w.]+)' op", r"'(stablehlo\.[\w.]+)' op", r"(aten\.[\w.]+)", r"Lowering not found: (\S+)"):
        m = re.search(pat, text)
        if m:
            return m.group(1)
    return None


def _export(net: nn.Module, example: torch.Tensor) -> tuple[torch.fx.GraphModule, bool]:
    """torch.export with a dynamic batch dimension (fast batched calibration); batch 1 if the model pins it.

    The converter later re-traces the quantised graph with the batch-1 example, so the .tflite has batch 1.
    """
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        ep = torch.export.export(net, (torch.cat([example, example]),), dynamic_shapes=(({0: batch},),))
        return ep.module(), True
    except Exception:  # noqa: BLE001 - e.g. a reshape with a literal batch size: fall back to batch 1
        return torch.export.export(net, (example,)).module(), False


def _edge_quantizer_class():
    from edgefold.compiler.export.quantizer import CLAMP_OPS, annotate_remaining, decompose_for_int8
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    aten = torch.ops.aten
    producers = (aten.conv1d.default, aten.conv2d.default, aten.convolution.default, aten.batch_norm.default,
                 aten._native_batch_norm_legit_no_training.default)
    weighted = (aten.conv1d.default, aten.conv2d.default, aten.convolution.default, aten.linear.default,
                aten.addmm.default)

    class EdgeQuantizer(pq.PT2EQuantizer):
        """litert-torch's quantizer, plus ReLU6 treated like ReLU after a conv, plus an int8 observer on every
        float tensor the stock patterns leave alone (compiler/export/quantizer.py).

        The stock quantizer has conv-bn-relu patterns but none for ReLU6: it lets hardtanh share the observer
        of the conv output, so a ReLU6 output got the conv's pre-activation range (about half of the int8 codes
        spent on negatives that ReLU6 removes; MobileNetV1-0.25 agreed 92.8 % instead of 96.4 %). As for ReLU,
        the conv output is left unobserved and the ReLU6 output gets its own range; the converter then fuses
        the clamp into the conv (CONV_2D with fused RELU6).
        """

        # the stock GRU pattern fails on a GRU called without an initial state ("list index out of range"); the
        # exported graph has the GRU's gates as plain linear / sigmoid / tanh ops, annotated like any other
        STATIC_OPS = [op for op in pq.PT2EQuantizer.STATIC_OPS if op != "gru_io_only"]

        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            return super().transform_for_annotation(decompose_for_int8(model))

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            self._unfusable(model)
            self._relu6(model)
            annotate_remaining(model, self.global_config)
            return model

        def _unfusable(self, model: torch.fx.GraphModule) -> None:
            """The stock conv-relu / linear-relu patterns leave the conv's output unobserved (the converter fuses
            the ReLU into it) without checking that the ReLU is its only reader; where the conv output is also
            read elsewhere (a pre-activation skip, PReLU's relu(x) and x - relu(x)) it cannot be fused, so it
            stayed float. Give such a conv its own int8 output."""
            act = self.global_config.output_activation
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target not in weighted or len(node.users) < 2:
                    continue
                ann = node.meta.get("quantization_annotation")
                if ann is not None and getattr(ann, "_annotated", False) and ann.output_qspec is None:
                    ann.output_qspec = act

        def _relu6(self, model: torch.fx.GraphModule) -> None:
            act = self.global_config.output_activation
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target not in CLAMP_OPS:
                    continue
                src = node.args[0]
                lo = node.args[1] if len(node.args) > 1 else -1.0
                hi = node.args[2] if len(node.args) > 2 else 1.0
                if (float(lo), float(hi)) != (0.0, 6.0) or not isinstance(src, torch.fx.Node) \
                        or src.target not in producers or len(src.users) != 1:
                    continue  # only a ReLU6 the converter can fuse into the conv that feeds it
                ann = src.meta.get("quantization_annotation")
                if ann is None or ann.output_qspec is None:
                    continue
                ann.output_qspec = None  # fused into the conv: not a tensor of the int8 model
                node.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=act, _annotated=True)

    return EdgeQuantizer


def _quantizer(observer: str):
    """litert-torch's PT2E quantizer: symmetric per-channel int8 weights, int8 activations observed by `observer`.

    "minmax" takes each activation's full calibration range, like TFLite's own post-training quantisation;
    "histogram" (litert-torch's default) picks the range with the least quantisation error, which may clip.
    """
    import dataclasses

    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver

    if observer not in OBSERVERS:
        raise EdgefoldError(f"unknown activation observer '{observer}'; choose one of: {', '.join(OBSERVERS)}")
    cfg = pq.get_symmetric_quantization_config(is_per_channel=True)
    ctr = (MinMaxObserver if observer == "minmax" else HistogramObserver).with_args(eps=2**-12)
    act = dataclasses.replace(cfg.input_activation, observer_or_fake_quant_ctr=ctr)
    cfg = dataclasses.replace(cfg, input_activation=act, output_activation=act)
    return _edge_quantizer_class()().set_global(cfg)


def _one_partition_per_call(graph: torch.fx.GraphModule) -> None:
    """Give each call of a reused module (e.g. a block's single `self.relu` used twice) its own partition.

    The PT2E annotators group nodes by the module they came from; two calls of one ReLU become one "partition"
    with two outputs, which the quantizer skips ("Relu partition has more than one output node"), leaving the
    residual ADD in float. torch.export already tells the calls apart in the stack key ("relu@1"), so copy that
    into the module name the partitioner groups by.
    """
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        key, (fqn, cls) = list(stack.items())[-1]
        if "@" in key and "@" not in fqn:
            stack[key] = (f"{fqn}@{key.rsplit('@', 1)[1]}", cls)


def export_tflite_int8(model: nn.Module, example_input: torch.Tensor, calib_data: torch.Tensor,
                       observer: str = DEFAULT_OBSERVER) -> bytes:
    """Quantise `model` (NCHW, float) to a full-integer int8 .tflite with NHWC int8 input; returns the flatbuffer.

    `example_input` is one NCHW sample batch (batch 1); `calib_data` is N x C x H x W float calibration data.
    Raises EdgefoldError naming the op when something cannot be lowered or stays float.
    """
    blob = convert_int8(model, example_input, calib_data, observer)
    check_full_integer(blob, model)
    return blob


def convert_int8(model: nn.Module, example_input: torch.Tensor, calib_data: torch.Tensor,
                 observer: str = DEFAULT_OBSERVER) -> bytes:
    """The PT2E + LiteRT conversion without the full-integer gate (what export_tflite_int8 checks)."""
    with capture_fd2():  # absl/TensorFlow start-up chatter on the C-level stderr
        import litert_torch
        from litert_torch.quantize import quant_config as qc
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example_input = example_input[:1].to(torch.float32).contiguous()
    calib = check_calibration(calib_data, example_input)
    channel_last = example_input.dim() == 4
    net = unroll_rnns(copy.deepcopy(model)).eval()
    if channel_last:
        with torch.no_grad():
            out = net(example_input)
        # image-shaped outputs (a conv feature map) go channel-last too, or a TRANSPOSE is left at the end
        outs = [0] if isinstance(out, torch.Tensor) and out.dim() >= 3 else None
        net = litert_torch.to_channel_last_io(net, args=[0], outputs=outs).eval()
        example, calib = to_nhwc(example_input), to_nhwc(calib)
    else:
        example = example_input
    quantizer = _quantizer(observer)
    stage = "torch.export"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export / torchao deprecation chatter, not the user's business
            graph, batched = _export(net, example)
            _one_partition_per_call(graph)
            stage = "PT2E prepare"
            with contextlib.redirect_stdout(io.StringIO()):  # the quantizer print()s notes about partitions
                graph = prepare_pt2e(graph, quantizer)
            stage = "calibration"
            step = CALIB_BATCH if batched else 1
            for i in range(0, len(calib), step):
                graph(calib[i : i + step])
            stage = "PT2E convert"
            graph = convert_pt2e(graph, fold_quantize=False)
            move_exported_model_to_eval(graph)
            stage = "LiteRT conversion"
            with capture_fd2() as log:
                try:
                    qcfg = qc.QuantConfig(pt2e_quantizer=quantizer)
                    edge = litert_torch.convert(graph, (example,), quant_config=qcfg)
                    blob = bytes(edge.model_content())
                except Exception as e:  # noqa: BLE001 - re-raised below with the converter's log
                    conv_err: BaseException | None = e
                else:
                    conv_err = None
            if conv_err is not None:
                raise RuntimeError(f"{_first_line(conv_err)} {log.text[-2000:]}")
    except EdgefoldError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the external toolchain becomes one line
        text = f"{e}"
        op = _unsupported_op(text)
        why = f"op {op} cannot be lowered" if op else _first_line(e)
        raise EdgefoldError(f"TFLite int8 export failed during {stage}: {why}") from None
    return blob


def check_full_integer(blob: bytes, model: nn.Module | None = None) -> None:
    """Fail, naming the ops and layers, if the model is not full-integer int8 (float I/O or ops left in float)."""
    from edgefold.compiler.tflite_model import read_tflite

    info = read_tflite(blob)
    for kind, t in (("input", info.input_tensors[0]), ("output", info.output_tensors[0])):
        if t.dtype != "int8":
            raise EdgefoldError(f"TFLite export produced a {t.type_name} model {kind} ({t.name}); full-integer "
                                "needs int8")
    modules = dict(model.named_modules()) if model is not None else {}
    float_layers: dict[str, list[str]] = {}
    for op in info.ops:
        if op.name in ("QUANTIZE", "DEQUANTIZE", "RESHAPE"):
            continue  # the boundaries of a float island, not its cause
        if any(t.dtype in ("float32", "float16") for t in info.op_inputs(op) + info.op_outputs(op)):
            layer = op.layer
            if layer in modules:
                layer = f"{layer} ({type(modules[layer]).__name__})"
            ops = float_layers.setdefault(layer, [])
            if op.name not in ops:
                ops.append(op.name)
    if float_layers:
        where = "; ".join(f"{layer}: {', '.join(ops)}" for layer, ops in list(float_layers.items())[:4])
        more = f" (+{len(float_layers) - 4} more layers)" if len(float_layers) > 4 else ""
        raise EdgefoldError(
            f"cannot lower to full-integer int8: ops stay float32 after PT2E quantisation in {where}{more} -- "
            "litert-torch's int8 quantizer has no integer pattern for them (e.g. LayerNorm, Softmax, attention "
            "matmul, residual add outside a conv block), and a float op would need DEQUANTIZE/QUANTIZE islands "
            "that int8-only MCU firmware does not run"
        )
