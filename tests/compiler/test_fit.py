"""Fit to a budget: the footprint model against the twin's linker, unmeetable budgets, exact --ratios replay,
allocation under limits with protected layers."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.compress import compress, graph, keep_count
from edgefold.compiler.fit import Budget, FootprintModel, fit, load_ratios, plan_fit
from edgefold.targets import qemu

from edgefold.core.errors import EdgefoldError

HAVE_ARM = bool(shutil.which(qemu.GCC))


def _link(model: torch.nn.Module, shape, tmp_path) -> dict:
    """Export int8, generate C, link for the nRF52840 map: what the twin's linker says."""
    from edgefold.compiler.codegen import generate
    from edgefold.compiler.export.tflite import export_tflite_int8

    bi = tmp_path / "build-input"
    bi.mkdir(parents=True)
    blob = export_tflite_int8(model.eval(), torch.zeros(shape), data.calibration_batch(shape, 16))
    (bi / "model_int8.tflite").write_bytes(blob)
    generate(blob, bi / "codegen")
    b = qemu.NanoQemuTarget().build(bi, tmp_path / "build", "edgefold", runs=1, warmup=0)
    return {"flash": b.flash, "static_ram": b.static_ram}


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc absent")
@pytest.mark.parametrize("name, ratio, per_group", [
    ("dscnn", 0.5, False), ("mobilenetv1_025", 0.0, False), ("resnet8", 0.0, True)])
def test_footprint_prediction_within_5_percent_of_the_linker(name, ratio, per_group, tmp_path):
    model = zoo.build(name).eval()
    shape = zoo.input_shape(name)
    x = torch.zeros(shape)
    groups = graph.find_groups(copy.deepcopy(model), x).groups
    ratios = {g.name: (0.2, 0.5, 0.75)[i % 3] for i, g in enumerate(groups)} if per_group else {}
    keep = [keep_count(g.n, ratios.get(g.name, ratio)) for g in groups]
    pred = FootprintModel.trace(model, x, groups).predict(keep, qemu.twin_costs())
    compressed, _ = compress(model, x, "fold", ratio, "none", ratios=ratios) if (ratio or ratios) else (model, None)
    linked = _link(compressed, shape, tmp_path)
    assert abs(pred.flash / linked["flash"] - 1) < 0.05, (pred.flash, linked)
    assert abs(pred.static_ram / linked["static_ram"] - 1) < 0.05, (pred.static_ram, linked)


def test_unmeetable_budget_is_one_line_with_the_smallest_footprint():
    model = zoo.build("resnet8").eval()
    with pytest.raises(EdgefoldError) as e:
        plan_fit(model, torch.zeros(1, 3, 32, 32), Budget(flash=8 * 1024, ram=256 * 1024), qemu.twin_costs())
    msg = str(e.value)
    assert "\n" not in msg and "smallest footprint reachable is Flash" in msg and "budget cannot be met" in msg
    with pytest.raises(EdgefoldError, match="no budget"):
        plan_fit(model, torch.zeros(1, 3, 32, 32), Budget(), qemu.twin_costs())
    with pytest.raises(EdgefoldError, match="positive"):
        Budget(flash=-3).validate()


def test_fit_meets_the_budget_keeps_protected_layers_and_replays_exactly(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("resnet8").eval()
    x = torch.zeros(1, 3, 32, 32)
    costs = qemu.twin_costs()
    full = plan_fit(model, x, Budget(flash=983_040), costs).before
    budget = Budget(flash=int(full.flash * 0.6), instructions=full.instructions * 0.7)
    plan = plan_fit(model, x, budget, costs, keep=["stem.0"])
    inputs = data.load((1, 3, 32, 32), "train").x[:96]
    res = fit(plan, inputs, "fold", "repair", levels=(0.5, 0.9), samples=32)
    assert res.predicted.flash <= budget.flash and res.predicted.instructions <= budget.instructions
    assert "stem.0" not in res.ratios and res.kept_layers == ["stem.0"]
    assert len(set(res.ratios.values())) > 1  # per-group, not one uniform ratio
    # replay: the compressed model has exactly the chosen channel counts, from the JSON as compress.json records it
    path = tmp_path / "compress.json"
    path.write_text(json.dumps({"method": "fold", "ratios": res.ratios}))
    ratios = load_ratios(str(path))
    assert ratios == res.ratios
    a, rep_a = compress(model, x, "fold", 0.0, "none", ratios=ratios)
    b, rep_b = compress(model, x, "fold", 0.0, "none", ratios=ratios)
    assert {g.name: g.k for g in rep_a.groups} == res.keep
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert rep_a.ratios == res.ratios


def test_bad_ratio_files_and_group_names(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"ratios": {"stem.0": 1.5}}')
    with pytest.raises(EdgefoldError, match=r"must be a number in \[0, 1\)"):
        load_ratios(str(p))
    p.write_text("not json")
    with pytest.raises(EdgefoldError, match="not valid JSON"):
        load_ratios(str(p))
    with pytest.raises(EdgefoldError, match="no compressible channel group named nope"):
        compress(zoo.build("resnet8"), torch.zeros(1, 3, 32, 32), "fold", 0.0, ratios={"nope": 0.5})
    with pytest.raises(EdgefoldError, match="--keep fc9"):
        plan_fit(zoo.build("resnet8"), torch.zeros(1, 3, 32, 32), Budget(flash=983_040), qemu.twin_costs(),
                 keep=["fc9"])


def test_ratio_cap_spreads_the_cut_and_is_raised_only_when_needed():
    from edgefold.compiler.fit.allocate import allocate

    model = zoo.build("resnet8").eval()
    x = torch.zeros(1, 3, 32, 32)
    costs = qemu.twin_costs()
    plan = plan_fit(model, x, Budget(instructions=1e12), costs)
    fm = plan.footprint_model
    budget = Budget(instructions=plan.before.instructions * 0.5)
    cheap = fm.group_names.index("layers.2.conv1")
    cost = lambda gi, r: r * (0.01 if gi == cheap else 1.0)  # noqa: E731
    free = allocate(fm, costs, budget, cost, plan.frozen)
    capped = allocate(fm, costs, budget, cost, plan.frozen, max_ratio=0.75)
    assert free.fits and capped.fits
    assert free.ratios[cheap] > 0.9 and max(capped.ratios) <= 0.75
    # a budget only reachable past the cap: fit raises the cap rather than fail
    tight = Budget(instructions=plan.smallest.instructions * 1.05)
    res = fit(plan_fit(model, x, tight, costs), data.load((1, 3, 32, 32), "train").x[:48], levels=(0.5,), samples=16)
    assert res.predicted.instructions <= tight.instructions and max(res.ratios.values()) > 0.75
