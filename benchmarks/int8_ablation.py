"""Where int8 loses top-1 agreement with the float model: int8 weights alone, int8 activations alone, both, and int8
weights one layer at a time, simulated in PyTorch with TFLite's scheme (BatchNorm folded; symmetric per-channel
weights in [-127, 127]; asymmetric per-tensor activations after every ReLU/ReLU6, at the input and the logits,
ranges observed on 128 digits calibration images). For a model whose layers are a `features` nn.Sequential of
Conv2d / BatchNorm2d / activations (the zoo's MobileNetV1, VGG-style nets).

    .venv/bin/python benchmarks/int8_ablation.py --weights runs/bench-cache/mobilenetv1_025-default.pt
"""

from __future__ import annotations

import argparse
import copy

import torch
from edgefold.compiler import data
from edgefold.compiler.check.fidelity import held_out
from edgefold.compiler.checkpoint import load_model
from rich.console import Console
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

console = Console(highlight=False)


def fold_bn(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model)
    layers, out, i = list(m.features), [], 0
    while i < len(layers):
        if isinstance(layers[i], nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(layers[i], layers[i + 1]))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    m.features = nn.Sequential(*out)
    return m


def int8_weight(mod: nn.Module) -> None:
    w = mod.weight.data
    s = w.abs().reshape(w.shape[0], -1).max(1).values.clamp_min(1e-12) / 127
    s = s.reshape(-1, *([1] * (w.dim() - 1)))
    mod.weight.data = torch.clamp(torch.round(w / s), -127, 127) * s


def int8_weights(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            int8_weight(mod)
    return m


class FakeQuant(nn.Module):
    """Observes min/max while calibrating, then rounds to an asymmetric int8 grid over [min(lo, 0), max(hi, 0)]."""

    def __init__(self) -> None:
        super().__init__()
        self.lo, self.hi, self.calibrating = 0.0, 0.0, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.lo, self.hi = min(self.lo, x.min().item()), max(self.hi, x.max().item())
            return x
        s = (self.hi - self.lo) / 255
        zp = round(-128 - self.lo / s)
        return (torch.clamp(torch.round(x / s) + zp, -128, 127) - zp) * s


def int8_activations(model: nn.Module, calib: torch.Tensor) -> nn.Module:
    m = copy.deepcopy(model)
    layers: list[nn.Module] = [FakeQuant()]
    for layer in m.features:
        layers.append(layer)
        if isinstance(layer, (nn.ReLU, nn.ReLU6)):
            layers.append(FakeQuant())
    m.features = nn.Sequential(*layers)
    m.fc = nn.Sequential(m.fc, FakeQuant())
    with torch.no_grad():
        m(calib)
    for fq in m.modules():
        if isinstance(fq, FakeQuant):
            fq.calibrating = False
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="an edgefold checkpoint")
    args = ap.parse_args()
    lm = load_model(args.weights)
    shape = tuple(lm.spec.input_shape)
    x = torch.as_tensor(held_out(shape).x)
    calib = data.calibration_batch(shape, 128)
    with torch.no_grad():
        ref = lm.model.eval()(x).argmax(1)
        folded = fold_bn(lm.model.eval())

        def agree(m: nn.Module) -> float:
            return (m(x).argmax(1) == ref).float().mean().item() * 100

        console.print(f"{args.weights}: {len(x)} held-out images; agreement with the float model")
        console.print(f"  BatchNorm folded          {agree(folded):6.2f} %")
        console.print(f"  int8 weights only         {agree(int8_weights(folded)):6.2f} %")
        console.print(f"  int8 activations only     {agree(int8_activations(folded, calib)):6.2f} %")
        console.print(f"  both                      {agree(int8_activations(int8_weights(folded), calib)):6.2f} %")
        console.print("  int8 weights in one layer only (layers below 99.9 %):")
        for name, mod in folded.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                one = copy.deepcopy(folded)
                int8_weight(dict(one.named_modules())[name])
                a = agree(one)
                if a < 99.9:
                    console.print(f"    {name:14} {tuple(mod.weight.shape)!s:18} groups {getattr(mod, 'groups', 1):4} "
                                  f"{a:6.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
