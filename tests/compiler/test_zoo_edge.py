"""The edge test zoo (compiler/zoo_edge.py): every family builds, runs on digits shaped to its input, and trains."""

import pytest
import torch
import torch.nn.functional as F
from edgefold.compiler import data, zoo, zoo_edge

EDGE = list(zoo_edge.EDGE)


def test_edge_zoo_is_registered_and_the_reference_zoo_is_kept():
    assert set(EDGE) <= set(zoo.names())
    for name in ("resnet8", "resnet18", "resnet18_narrow", "vgg11_bn", "dscnn", "mobilenetv1_025", "vit_tiny"):
        assert name in zoo.names()
    assert zoo.names()[:7] == ["resnet8", "resnet18", "resnet18_narrow", "vgg11_bn", "dscnn", "mobilenetv1_025",
                               "vit_tiny"]


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (1, 10, 49), (1, 16, 10), (1, 64), (1, 60)])
def test_digits_take_every_input_rank(shape):
    split = data.load(shape, "test")
    assert split.x.shape == (360, *shape[1:]) and split.x.dtype == torch.float32
    assert -1.01 <= float(split.x.min()) and float(split.x.max()) <= 1.01 and float(split.x.std()) > 0.1


def test_digits_refuse_other_ranks():
    with pytest.raises(ValueError, match="N,C,H,W, N,C,L"):
        data.load((1, 2, 3, 4, 5))


@pytest.mark.parametrize("name", EDGE)
def test_edge_model_forwards_and_trains_on_digits(name):
    torch.manual_seed(0)
    model, shape = zoo.build(name), zoo.input_shape(name)
    tr = data.load(shape, "train")
    x, y = tr.x[:16], tr.y[:16]
    assert model.eval()(x).shape == (16, 10)
    opt = torch.optim.AdamW(model.parameters(), 1e-2)
    model.train()
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[1:]) < losses[0], losses


def test_full_sizes_are_the_published_widths():
    # MobileNetV2 1.0 with a 10-class head: 2.24 M parameters (3.5 M with the 1000-class head)
    assert abs(sum(p.numel() for p in zoo_edge.build_full("mobilenetv2").parameters()) - 2.237e6) < 0.01e6
    # EfficientNet-B0 with a 10-class head: 4.02 M (5.3 M with 1000 classes)
    assert abs(sum(p.numel() for p in zoo_edge.build_full("efficientnet_b0").parameters()) - 4.02e6) < 0.02e6


# --- int8 TFLite: the full-integer export of every family is checked in tests/firmware/test_zoo_edge_runtime.py,
# next to the runtime tests that use the same exports (one export per model and session) ---------------------------


def test_unrolled_rnn_matches_torch():
    from edgefold.compiler.export.quantizer import UnrolledRNN

    for cls in (torch.nn.GRU, torch.nn.LSTM):
        for batch_first in (True, False):
            torch.manual_seed(0)
            rnn = cls(10, 16, num_layers=2, batch_first=batch_first).eval()
            x = torch.randn(3, 7, 10)
            want, got = rnn(x), UnrolledRNN(rnn)(x)
            assert torch.allclose(want[0], got[0], atol=1e-5)


def test_long_sequences_stack_in_chunks_tflm_accepts():
    """TFLM's CONCATENATION takes at most 10 inputs: 25 steps are stacked as a tree of concatenations."""
    from edgefold.compiler.export.quantizer import MAX_CONCAT_INPUTS, _stack_in_chunks

    steps = tuple(torch.randn(2, 3) for _ in range(25))
    assert torch.equal(_stack_in_chunks(steps, 1), torch.stack(steps, 1))
    graph = torch.export.export(_Stacker(), (torch.randn(2, 25, 3),)).graph
    widths = [len(n.args[0]) for n in graph.nodes if n.target in (torch.ops.aten.cat.default,
                                                                    torch.ops.aten.stack.default)]
    assert widths and max(widths) <= MAX_CONCAT_INPUTS


class _Stacker(torch.nn.Module):
    def forward(self, x):
        from edgefold.compiler.export.quantizer import _stack_in_chunks

        return _stack_in_chunks(x.unbind(1), 1)


def test_bidirectional_rnn_is_named():
    from edgefold.compiler.export.quantizer import unroll_rnns

    from edgefold.core.errors import EdgefoldError

    model = torch.nn.Sequential(torch.nn.GRU(4, 8, bidirectional=True))
    with pytest.raises(EdgefoldError, match=r"0 \(GRU\).*bidirectional"):
        unroll_rnns(model)


# --- ONNX: any input rank, pinned batches ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dscnn1d", "mlp", "gru_kws", "vit_mha"])
def test_edge_model_onnx_float_and_int8(name):
    from edgefold.compiler.check.fidelity import check_fidelity
    from edgefold.compiler.export.onnx import export_onnx
    from edgefold.compiler.export.onnx_int8 import export_onnx_int8

    model, shape = zoo.build(name).eval(), zoo.input_shape(name)
    calib = data.calibration_batch(shape, 32)
    f = export_onnx(model, calib[:1])
    q = export_onnx_int8(f, calib)
    res = check_fidelity(model, shape, {"onnx": f, "onnx-int8": q})
    assert res["onnx"].samples == 360 and res["onnx"].agreement == 100.0 and res["onnx"].max_abs_error < 1e-3
    assert res["onnx-int8"].samples == 360


def test_fidelity_respects_a_pinned_onnx_batch():
    import numpy as np
    import onnx
    from edgefold.compiler.check.fidelity import onnx_outputs
    from edgefold.compiler.export.onnx import export_onnx, fixed_batch

    model = zoo.build("mlp").eval()
    blob = export_onnx(model, torch.zeros(1, 64))
    assert fixed_batch(blob) is None
    proto = onnx.load_from_string(blob)
    for t in (proto.graph.input[0], proto.graph.output[0]):
        t.type.tensor_type.shape.dim[0].dim_value = 4  # what an exporter that specialises the batch writes
    pinned = proto.SerializeToString()
    assert fixed_batch(pinned) == 4
    x = torch.randn(10, 64)
    with torch.no_grad():
        assert np.allclose(onnx_outputs(pinned, x), model(x).numpy(), atol=1e-4)
