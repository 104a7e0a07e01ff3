"""The pytest plugin (edgefold/pytest_plugin.py, entry point pytest11): a user's device test file, run by pytest in a
subprocess from a temporary folder as a user runs it, deploys a zoo model to the nano33ble-qemu twin through the
edgefold_deploy fixture and asserts on the typed measurement."""

from __future__ import annotations

import importlib.metadata
import json
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import pytest

WEIGHTS = {weights!r}
DSCNN = dict(model="dscnn", weights=WEIGHTS, method="fold", ratio=0.0, repair="none", runs=2)


def test_dscnn_fits_the_nano(edgefold_deploy, edgefold_target):
    r = edgefold_deploy(**DSCNN)
    assert r.target == edgefold_target == "nano33ble-qemu" and r.emulated
    assert r.latency["unit"] == "ms" and r.latency["kind"] == "estimated" and 0 < r.latency["value"] < 1000
    assert r.instructions > 100_000
    assert 0 < r.ram["total"] <= 256 * 1024 and 0 < r.flash <= 983_040
    assert r.output_crc_match is True


def test_dscnn_is_accurate_on_the_device(edgefold_deploy):
    r = edgefold_deploy(**DSCNN)
    assert r.accuracy["int8"] >= 80 and r.accuracy["agreement"] >= 95


def test_same_request_deploys_once(edgefold_deploy):
    assert edgefold_deploy(**DSCNN) is edgefold_deploy(**DSCNN)


def test_a_budget_the_model_misses(edgefold_deploy):
    assert edgefold_deploy(**DSCNN).flash <= 1024  # fails: the plugin must report a real failure


@pytest.mark.edgefold_targets("esp-eye")
def test_only_on_the_esp_eye(edgefold_deploy):
    edgefold_deploy(**DSCNN)
'''


def test_entry_point_is_installed():
    eps = importlib.metadata.entry_points(group="pytest11")
    assert any(ep.value == "edgefold.pytest_plugin" for ep in eps), \
        "the pytest11 entry point is not installed: reinstall the package (make venv, or pip install -e .)"


def test_device_test_on_the_twin_through_the_fixture(pytester, trained):
    pytester.makepyfile(test_device=USER_TESTS.format(weights=str(trained("dscnn", 3))))
    user_tests = pytester
    junit = user_tests.path / "junit.xml"
    out = user_tests.path / "deploys"
    r = user_tests.runpytest_subprocess("--edgefold-target", "nano33ble-qemu", "--edgefold-out", str(out),
                                        f"--junitxml={junit}", "-rs", timeout=900)
    r.assert_outcomes(passed=3, failed=1, skipped=1)
    text = r.stdout.str()
    assert "edgefold: target nano33ble-qemu" in text
    assert "for edgefold targets esp-eye only (this run: nano33ble-qemu)" in text
    deploys = [p for p in out.iterdir() if p.is_dir()]
    assert len(deploys) == 1 and (deploys[0] / "result.json").is_file()  # four tests, one deployment
    flash = json.loads((deploys[0] / "result.json").read_text())["flash"]
    assert f"assert {flash} <= 1024" in text  # the failing budget shows the measured Flash
    case = next(tc for tc in ET.parse(junit).getroot().iter("testcase") if tc.get("name") == "test_dscnn_fits_the_nano")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["edgefold.target"] == "nano33ble-qemu" and "(estimated)" in props["edgefold.latency"]
    assert int(props["edgefold.flash"]) > 0 and float(props["edgefold.accuracy_int8"]) >= 80


def test_without_a_target_device_tests_skip(pytester):
    pytester.makepyfile(test_device=USER_TESTS.format(weights="never-deployed.pt"))
    user_tests = pytester
    r = user_tests.runpytest_subprocess("-rs")
    r.assert_outcomes(skipped=5)
    assert "run pytest with --edgefold-target NAME" in r.stdout.str()
    bad = user_tests.runpytest_subprocess("--edgefold-target", "mars-rover")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "unknown target" in bad.stderr.str()
