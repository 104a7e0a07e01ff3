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
