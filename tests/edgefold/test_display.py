"""What the commands print: estimated latencies with the precision an estimate has, labelled as estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefold.commands.deploy import print_result, sig3
from edgefold.core.artifacts import DeployResult


@pytest.mark.parametrize("v,text", [(217.25, "217"), (1.2345, "1.23"), (0.012345, "0.0123"), (12345.0, "12,300"),
                                    (5.0, "5.00"), (0.0, "0")])
def test_three_significant_digits(v, text):
    assert sig3(v) == text


def test_estimated_latency_is_labelled_and_rounded(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    est = DeployResult(target="nano33ble-qemu", latency={"value": 217.25, "unit": "ms", "kind": "estimated"})
    print_result(est, Path("result.json"))
    out = capsys.readouterr().out
    assert "latency (est.)" in out and "217 ms" in out and "217.25" not in out
    measured = DeployResult(target="jetson-local", latency={"value": 2.12345, "unit": "ms", "kind": "measured"})
    print_result(measured, Path("result.json"))
    assert "latency (measured)" in capsys.readouterr().out
