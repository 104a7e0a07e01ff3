"""Compress so that it fits, and keep the accuracy: the data rule, the budget, per-group ratios and recovery, as
one step that `edgefold compress`, `edgefold deploy` and `edgefold finetune` share (edgefold.api calls it).

    shrink(loaded, ShrinkRequest(method="fold", fit=FitRequest(enabled=True), recover=RecoverRequest(True)),
           data=DataRequest("train.npz", "test.npz"), target=target)

Order: data (checked first, one-line errors) -> budget feasibility (fails at once with the smallest footprint
reachable) -> per-group sensitivity + allocation -> compress with the chosen ratios + BatchNorm repair -> recovery
(distillation from the uncompressed model) -> accuracy on the user's labelled data, where there is some.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgefold.core.errors import EdgefoldError

if TYPE_CHECKING:
    import torch

    from edgefold.compiler.checkpoint import LoadedModel
    from edgefold.compiler.fit import Budget, Costs, FitResult
    from edgefold.compiler.userdata import DataPlan, Dataset

Progress = Callable[[str], None]
EpochHook = Callable[[int, int, dict[str, Any]], None]
SYNTHETIC_SAMPLES = 256  # deep-inversion inputs for data-free recovery
AUGMENT_MAX_TEACHER_MACS = 100_000_000  # above: no shifted batches, so the teacher's logits are computed once
FLASH_RAM_MARGIN = 0.99  # fit 1 % under a target's Flash/RAM: the linker has the last word
INSTRUCTION_MARGIN = 0.97  # and 3 % under instruction / latency limits (the cost model's error on the zoo: <= 2 %)


@dataclass
class DataRequest:
    data: str | None = None  # --data FILE (.npz x[, y] / .npy) or "digits"
    eval_data: str | None = None  # --eval-data FILE (.npz with x and y)
    data_free: bool = False  # repair, sensitivity, recovery and int8 calibration on deep-inversion inputs only

    def validate(self) -> None:
        if self.data_free and self.data is not None:
            raise EdgefoldError("--data-free uses no input data: drop --data (or drop --data-free)")


@dataclass
class FitRequest:
    enabled: bool = False  # --fit: choose per-group ratios under the budget
    max_flash: float | None = None  # KB
    max_ram: float | None = None  # KB
    max_latency: float | None = None  # ms (the target's cost model: an estimate)
    max_instructions: float | None = None
    max_macs: float | None = None
    max_params: float | None = None
    keep: list[str] = field(default_factory=list)  # layers whose groups are never compressed
    ratios_file: str | None = None  # --ratios FILE.json: replay per-group ratios exactly
    instruction_scale: float = 1.0  # measured / predicted instructions (the twin's correction)

    def validate(self) -> None:
        for name in ("max_flash", "max_ram", "max_latency", "max_instructions", "max_macs", "max_params"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise EdgefoldError(f"--{name.replace('_', '-')} must be a positive number, got {v}")
        if self.ratios_file and self.enabled:
            raise EdgefoldError("--ratios replays chosen ratios: it cannot be combined with --fit")
        if self.keep and not self.enabled:
            raise EdgefoldError("--keep protects layers from --fit: pass --fit too")
        if self.limits_given() and not self.enabled:
            raise EdgefoldError("--max-* limits are budgets for --fit: pass --fit too")

    def limits_given(self) -> bool:
        return any(getattr(self, n) is not None for n in ("max_flash", "max_ram", "max_latency", "max_instructions",
                                                          "max_macs", "max_params"))

    def budget(self) -> Budget:
        from edgefold.compiler.fit import Budget

        kb = 1024
        return Budget(flash=int(self.max_flash * kb) if self.max_flash else None,
                      ram=int(self.max_ram * kb) if self.max_ram else None, latency_ms=self.max_latency,
                      instructions=self.max_instructions, macs=int(self.max_macs) if self.max_macs else None,
                      params=int(self.max_params) if self.max_params else None)


@dataclass
class RecoverRequest:
    enabled: bool = False
    time_s: float | None = None  # --recover-time
    epochs: int = 12
    feature_weight: float = 0.0

    def validate(self) -> None:
        if self.time_s is not None and not (math.isfinite(self.time_s) and self.time_s > 0):
            raise EdgefoldError(f"--recover-time must be a positive number of seconds, got {self.time_s}")
        if self.time_s is not None and not self.enabled:
            raise EdgefoldError("--recover-time limits --recover: pass --recover too")
        if self.epochs < 1:
            raise EdgefoldError(f"--recover-epochs must be >= 1, got {self.epochs}")


@dataclass
class ShrinkRequest:
    method: str = "fold"
    ratio: float = 0.5
    repair: str = "repair"
    seed: int = 0
    fit: FitRequest = field(default_factory=FitRequest)
    recover: RecoverRequest = field(default_factory=RecoverRequest)


@dataclass
class Shrunk:
    model: torch.nn.Module
    report: Any  # compiler.compress.CompressReport
    ratios: dict[str, float]
    inputs: torch.Tensor | None  # fitting / recovery inputs (user data, digits, or synthetic)
    inputs_label: str | None
    calib: torch.Tensor | None  # the 128 samples REPAIR re-estimated on; int8 export calibrates on them too
    eval: Dataset | None
    accuracy_before: float | None
    accuracy_after_compress: float | None
    accuracy_after: float | None
    fit: FitResult | None = None
    recover: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def data_plan(loaded: LoadedModel, req: DataRequest) -> DataPlan:
    """The data rule applied to this model (compiler/userdata.py): checked before any work."""
    from edgefold.compiler.userdata import DataPlan, num_outputs, resolve_data

    req.validate()
    shape = tuple(loaded.spec.input_shape)
    outputs = num_outputs(loaded.model, shape)
    zoo_model = loaded.spec.name is not None
    if req.data_free:
        plan = resolve_data(None, req.eval_data, shape, outputs, zoo_model)
        return DataPlan(None, plan.eval, ["data-free: repair, recovery and calibration on deep-inversion inputs"])
    return resolve_data(req.data, req.eval_data, shape, outputs, zoo_model)


def target_budget(target: Any, backend: str) -> tuple[Budget, Costs]:
    """A target's own limits (Flash and RAM after its firmware, 1 % margin) and cost model."""
    from edgefold.compiler.fit import Budget

    costs_fn = getattr(target, "costs", None)
    if costs_fn is None:
        raise EdgefoldError(f"--fit: {target.spec.name} has no footprint model; fit to nano33ble or nano33ble-qemu, or "
                            "give only --max-macs / --max-params")
    spec = target.spec
    return Budget(flash=int(spec.flash_bytes * FLASH_RAM_MARGIN), ram=int(spec.ram_bytes * FLASH_RAM_MARGIN)), \
        costs_fn(backend)


def _accuracy(model: torch.nn.Module, ds: Dataset | None) -> float | None:
    """Top-1 % on labelled data (the user's own, or the digits for models whose classes they are)."""
    if ds is None or ds.y is None:
        return None
    import torch

    with torch.no_grad():
        model.eval()
        pred = torch.cat([model(ds.x[i : i + 256]).argmax(1) for i in range(0, len(ds), 256)])
    return 100.0 * int((pred == ds.y).sum()) / max(1, len(ds))


def shrink(loaded: LoadedModel, req: ShrinkRequest, plan: DataPlan, target: Any = None, backend: str = "edgefold",
           progress: Progress | None = None, on_epoch: EpochHook | None = None) -> Shrunk:
    """Fit (optional), compress, repair, recover (optional); see the module docstring."""
    import torch

    from edgefold.compiler.compress import compress
    from edgefold.compiler.fit import load_ratios

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    seconds: dict[str, float] = {}
    model, spec = loaded.model.eval(), loaded.spec
    shape = tuple(spec.input_shape)
    example = torch.zeros((1, *shape[1:]))
    req.fit.validate()
    req.recover.validate()
    ratios = load_ratios(req.fit.ratios_file) if req.fit.ratios_file else {}
    fit_plan = None
    if req.fit.enabled:  # feasibility first: an impossible budget fails before any data is synthesised
        from dataclasses import replace

        from edgefold.compiler.fit import plan_fit

        budget, costs = req.fit.budget(), None
        budget = replace(budget, instructions=budget.instructions * INSTRUCTION_MARGIN if budget.instructions else None,
                         latency_ms=budget.latency_ms * INSTRUCTION_MARGIN if budget.latency_ms else None)
        if target is not None and getattr(target.spec, "kind", "") == "mcu":
            tb, costs = target_budget(target, backend)
            budget = tb.tighter(budget)
        if costs is None:
            from edgefold.targets.qemu import twin_costs

            costs = twin_costs()  # MACs/params need no board; Flash/RAM/instructions then describe the Nano twin
        fit_plan = plan_fit(model, example, budget, costs, req.fit.keep, req.fit.instruction_scale)
    inputs, label = (plan.inputs.x, plan.inputs.source) if plan.inputs is not None else (None, None)
    if inputs is None and (fit_plan is not None or req.recover.enabled or req.repair in ("repair",)):
        if plan.notes and plan.notes[0].startswith("data-free"):
            from edgefold.compiler.compress import count_macs_params
            from edgefold.compiler.recover import synthetic_inputs

            t = time.perf_counter()
            # every inversion step is a forward + backward pass of the uncompressed model: fewer, shorter batches
            # for big teachers (resnet18: 557 M MACs) keep it within minutes on two cores
            big = count_macs_params(model, example)[0] > AUGMENT_MAX_TEACHER_MACS
            n, steps = (96, 60) if big else (SYNTHETIC_SAMPLES, 100)
            say(f"data-free: synthesising {n} inputs by deep inversion of the uncompressed model ({steps} steps)")
            inputs = synthetic_inputs(model, example, n, steps=steps, batch=48 if big else 64, seed=req.seed)
            label = f"deep inversion of the uncompressed model ({n} samples, {steps} steps)"
            seconds["synthesise"] = round(time.perf_counter() - t, 3)
        else:
            plan.require_inputs("--fit, --recover and --repair repair")
    fit_res = None
    if fit_plan is not None:
        from edgefold.compiler.fit import fit

        t = time.perf_counter()
        say(f"fit: measuring per-group sensitivity ({req.method}) for {fit_plan.budget.describe()}")
        fit_res = fit(fit_plan, inputs, req.method, "repair", seed=req.seed,
                      on_progress=lambda stage, d, n: say(f"fit: {stage} {d}/{n}" if n else f"fit: {stage} step {d}"))
        ratios = dict(fit_res.ratios)
        seconds["fit"] = round(time.perf_counter() - t, 3)
    acc_before = _accuracy(model, plan.eval)
    t = time.perf_counter()
    base_ratio = 0.0 if (fit_res is not None or req.fit.ratios_file) else req.ratio
    repair = req.repair
    say(f"compress: {req.method}" + (f", {len(ratios)} per-group ratios" if ratios else f", ratio {base_ratio}")
        + f", repair {repair}")
    calib = None
    if plan.inputs is not None and plan.inputs.builtin:
        from edgefold.compiler import data

        calib = data.calibration_batch(shape, 128, seed=req.seed)  # the fixed digits sample every command uses
    elif inputs is not None:
        calib = inputs[:128].contiguous()
    compressed, report = compress(model, example, req.method, base_ratio, repair,
                                  calib_data=calib if repair == "repair" else None, seed=req.seed,
                                  ratios=ratios or None)
    seconds["compress"] = round(time.perf_counter() - t, 3)
    acc_compress = _accuracy(compressed, plan.eval)
    rec = None
    if req.recover.enabled:
        from edgefold.compiler.recover import RecoverConfig, recover

        t = time.perf_counter()
        say(f"recover: distilling from the uncompressed model on {label}")
        labels = plan.inputs.y if plan.inputs is not None and inputs is plan.inputs.x else None
        ev = plan.eval
        # shifted batches need the teacher once per batch: worth it for small teachers (resnet8: 12.5 M MACs), not
        # for resnet18 (557 M MACs), whose logits are then computed once for the whole set
        cfg = RecoverConfig(epochs=req.recover.epochs, time_budget_s=req.recover.time_s,
                            feature_weight=req.recover.feature_weight, seed=req.seed,
                            augment=report.macs_before <= AUGMENT_MAX_TEACHER_MACS)
        r = recover(compressed, model, inputs, cfg, labels=labels, eval_x=ev.x if ev is not None else None,
                    eval_y=ev.y if ev is not None else None,
                    groups=report.groups, on_epoch=on_epoch)
        rec = {**r.to_dict(), "inputs": label}
        seconds["recover"] = round(time.perf_counter() - t, 3)
    acc_after = _accuracy(compressed, plan.eval)
    return Shrunk(compressed.eval(), report, ratios, inputs, label, calib, plan.eval, acc_before, acc_compress,
                  acc_after, fit_res, rec, list(plan.notes) + list(report.notices), seconds)
