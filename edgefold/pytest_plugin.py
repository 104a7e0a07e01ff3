"""pytest plugin (entry point `pytest11`, the convention of pytest-embedded): device tests as ordinary pytest tests.

    # test_model_on_device.py
    def test_fits_the_board(edgefold_deploy):
        r = edgefold_deploy(model="dscnn", weights="runs/weights/dscnn.pt", method="fold", ratio=0.5)
        assert r.latency["value"] < 150 and r.ram["total"] <= 256 * 1024 and r.accuracy["int8"] > 85

    pytest --edgefold-target nano33ble-qemu          # or nano33ble --edgefold-port /dev/ttyACM0, jetson-nano, ...

`edgefold_deploy(**deploy_options)` runs `edgefold deploy` in-process (edgefold.api.deploy) on the selected target
and returns its DeployResult (result.json, typed). Identical calls in one session deploy once. Without
--edgefold-target the tests that use the fixture are skipped, saying why. `@pytest.mark.edgefold_targets(...)`
restricts a test to some targets. `edgefold hil` stays the tool for matrix runs with baselines and resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from edgefold.core.artifacts import DeployResult

# DeployConfig fields the session options set; a test passes every other field as a keyword
_SESSION_FIELDS = ("target", "out", "port", "target_options")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("edgefold", "edgefold device tests (the edgefold_deploy fixture)")
    g.addoption("--edgefold-target", metavar="NAME",
                help="device the edgefold_deploy fixture deploys to (see `edgefold targets`); without it, tests "
                     "that use the fixture are skipped")
    g.addoption("--edgefold-port", metavar="PORT", help="serial port of the board (default: found by USB id)")
    g.addoption("--edgefold-option", action="append", default=[], metavar="KEY=VALUE",
                help="target option, as `edgefold deploy --option` (repeatable)")
    g.addoption("--edgefold-out", metavar="DIR",
                help="keep the deploy folders here (default: pytest's temporary folder)")
    parser.addini("edgefold_target", "default for --edgefold-target")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "edgefold_targets(*names): run this test only on these edgefold targets")
    target = _target(config)
    if target is None:
        return
    from edgefold.targets import registry

    if target not in registry.names():
        raise pytest.UsageError(f"--edgefold-target {target!r}: unknown target (known: "
                                f"{', '.join(registry.names())})")
    for item in config.getoption("edgefold_option"):
        if "=" not in item:
            raise pytest.UsageError(f"--edgefold-option must be KEY=VALUE, got {item!r}")


def _target(config: pytest.Config) -> str | None:
    return config.getoption("edgefold_target", None) or config.getini("edgefold_target") or None


def pytest_report_header(config: pytest.Config) -> str:
    t = _target(config)
    return f"edgefold: target {t}" if t else "edgefold: no --edgefold-target (device tests skip)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    m = item.get_closest_marker("edgefold_targets")
    if m is None:
        return
    t = _target(item.config)
    if t not in m.args:
        pytest.skip(f"for edgefold targets {', '.join(m.args)} only (this run: {t or 'no --edgefold-target'})")


class _Deployer:
    """One deploy per distinct request per session; a failed deploy fails every test that asks for it."""

    def __init__(self, config: pytest.Config, root: Path) -> None:
        self.target = _target(config)
        self.port = config.getoption("edgefold_port")
        pairs = (it.split("=", 1) for it in config.getoption("edgefold_option"))
        self.options = {k.strip().replace("-", "_"): v for k, v in pairs}  # as `edgefold deploy --option`
        self.root = root
        self.done: dict[str, DeployResult | str] = {}

    def __call__(self, **kwargs: Any) -> DeployResult:
        from edgefold.api import DeployConfig, deploy
        from edgefold.core.errors import EdgefoldError

        if self.target is None:
            pytest.skip("no device: run pytest with --edgefold-target NAME (see `edgefold targets`)")
        bad = sorted(set(kwargs) & set(_SESSION_FIELDS))
        if bad:
            raise TypeError(f"edgefold_deploy(): {bad[0]} is set by the pytest options (--edgefold-target, "
                            f"--edgefold-port, --edgefold-option, --edgefold-out), not per call")
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in self.done:
            name = "-".join(str(kwargs.get(k, "")) for k in ("model", "method", "ratio") if k in kwargs) or "deploy"
            out = self.root / f"{self.target}.{name}.{hashlib.sha256(key.encode()).hexdigest()[:8]}"
            cfg = DeployConfig(target=self.target, out=out, port=self.port, target_options=dict(self.options),
                               **kwargs)
            try:
                cfg.validate()
                self.done[key] = deploy(cfg)
            except EdgefoldError as e:
                self.done[key] = f"edgefold deploy to {self.target} failed: {e}"
        res = self.done[key]
        if isinstance(res, str):
            pytest.fail(res, pytrace=False)
        return res


@pytest.fixture(scope="session")
def _edgefold_deployer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _Deployer:
    out = request.config.getoption("edgefold_out")
    root = Path(out).resolve() if out else tmp_path_factory.mktemp("edgefold")
    os.makedirs(root, exist_ok=True)
    return _Deployer(request.config, root)


@pytest.fixture
def edgefold_target(request: pytest.FixtureRequest) -> str:
    """The --edgefold-target of this run; the test is skipped when none was given."""
    t = _target(request.config)
    if t is None:
        pytest.skip("no device: run pytest with --edgefold-target NAME (see `edgefold targets`)")
    return t


@pytest.fixture
def edgefold_deploy(request: pytest.FixtureRequest,
                    _edgefold_deployer: _Deployer) -> Callable[..., DeployResult]:
    """edgefold_deploy(model=..., weights=..., method=..., ratio=..., ...) -> DeployResult on --edgefold-target.

    Keywords are edgefold.api.DeployConfig's fields (as `edgefold deploy`'s flags). The measurements are also
    recorded as the test's properties (JUnit XML `<property>`).
    """
    def run(**kwargs: Any) -> DeployResult:
        r = _edgefold_deployer(**kwargs)
        lat = r.latency
        props = {"edgefold.target": r.target, "edgefold.latency": f"{lat.get('value')} {lat.get('unit')} "
                                                                  f"({lat.get('kind')})",
                 "edgefold.instructions": r.instructions, "edgefold.ram_total": (r.ram or {}).get("total"),
                 "edgefold.flash": r.flash, "edgefold.accuracy_int8": (r.accuracy or {}).get("int8")}
        request.node.user_properties.extend((k, v) for k, v in props.items() if v is not None)
        return r

    return run
