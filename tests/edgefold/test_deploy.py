"""`edgefold deploy` / `edgefold bench` end to end on the emulated twins (real QEMU, real sshd)."""

from __future__ import annotations

import json
import shutil

import pytest
from edgefold.targets import qemu
from folder_checks import snapshot

from edgefold.pipeline import DeployConfig, deploy


@pytest.fixture(scope="module")
def qemu_runs(trained, tmp_path_factory):
    """resnet8 and dscnn, trained on digits, folded at 0.5, deployed to nano33ble-qemu (edgefold backend)."""
    root = tmp_path_factory.mktemp("deploy")
    out = {}
    for name in ("resnet8", "dscnn"):
        cfg = DeployConfig(target="nano33ble-qemu", out=root / name, model=name, weights=str(trained(name, 3)),
                           method="fold", ratio=0.5, repair="repair", backend="edgefold", runs=3, warmup=1)
        out[name] = (deploy(cfg).to_dict(), root / name)
    return out


@pytest.mark.parametrize("name", ["resnet8", "dscnn"])
def test_deploy_to_qemu_twin_matches_host(qemu_runs, name):
    r, run_dir = qemu_runs[name]
    assert r["schema"] == "edgefold-result/1" and r["target"] == "nano33ble-qemu" and r["emulated"] is True
    assert r["output_crc_match"] is True  # the firmware computed exactly what the TFLM host interpreter computed
    assert r["instructions"] > r["macs"] > 0  # at least one instruction per MAC
    assert r["latency"]["kind"] == "estimated" and r["latency"]["unit"] == "ms"  # QEMU gives counts, not time
    assert r["params"] < r["params_before"]
    assert 0 < r["ram"]["static"] <= 256 * 1024 and 0 < r["flash"] <= 1024 * 1024
    assert r["ram"]["arena"] > 0 and r["accuracy"]["int8"] is not None
    for f in ("compress/model.pt", "compress/compress.json", "build-input/model_int8.tflite",
              "build-input/codegen/model.c", "build/firmware.elf", "result.json"):
        assert (run_dir / f).is_file(), f
    assert json.loads((run_dir / "result.json").read_text()) == json.loads(json.dumps(r))


def test_bench_remeasures_and_keeps_history(qemu_runs, cli):
    r, run_dir = qemu_runs["dscnn"]
    rc, out, err = cli("bench", "--target", "nano33ble-qemu", "--from", run_dir, "--runs", "2")
    assert rc == 0, err
    again = json.loads((run_dir / "result.json").read_text())
    # -icount makes the count exact to one SysTick tick: where a run starts within a tick depends on how long the
    # harness polled the UART before it (the host drains it at its own pace)
    assert abs(again["instructions"] - r["instructions"]) <= qemu.INSNS_PER_TICK
    assert again["latency"]["runs"] == 2 and again["output_crc_match"] is True
    history = (run_dir / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["latency"]["runs"] == 3


def test_bench_profile_times_every_kernel_call(qemu_runs, cli, tmp_path):
    _, src = qemu_runs["dscnn"]
    run_dir = tmp_path / "dscnn"
    shutil.copytree(src, run_dir)  # its own copy: the history test above reads the shared folder's history
    rc, out, err = cli("bench", "--target", "nano33ble-qemu", "--from", run_dir, "--runs", "1", "--warmup", "0",
                       "--profile")
    assert rc == 0, err
    assert "where the time goes" in out and "instr/MAC" in out
    r = json.loads((run_dir / "result.json").read_text())
    steps = json.loads((run_dir / "build-input/codegen/model.json").read_text())["steps"]
    rows = r["profile"]
    assert [(x["kernel"], x["op"], x["layer"], x["macs"]) for x in rows] == \
        [(s["kernel"], s["op"], s["layer"], s["macs"]) for s in steps]  # one row per kernel call, in order
    assert {x["op"] for x in rows} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert all(x["value"] > 0 and x["unit"] == "instructions" for x in rows)
    assert abs(sum(x["share"] for x in rows) - 1) < 1e-9
    assert sum(x["macs"] for x in rows) == r["codegen"]["macs"]
    assert 0.99 * r["instructions"] < sum(x["value"] for x in rows) <= r["instructions"]
    assert r["config"]["profile"] is True


@pytest.mark.parametrize("cmd,args,match", [
    ("deploy", ["--target", "jetson-local"], "--profile: jetson-local cannot time kernel calls"),
    ("build", ["--target", "jetson-local"], "--profile: jetson-local cannot time kernel calls"),
    ("deploy", ["--target", "nano33ble", "--backend", "tflm"], "backend tflm has none"),
])
def test_profile_on_a_target_without_kernel_calls_is_one_line(tmp_path, cli, cmd, args, match):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    rc, _, err = cli(cmd, "--model", "dscnn", "--out", out, "--profile", *args)
    assert rc != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and match in err  # one line that says why
    assert snapshot(tmp_path) == before  # nothing done: the output folder as it was


def test_bench_profile_on_jetson_is_one_line(qemu_runs, cli):
    _, run_dir = qemu_runs["dscnn"]
    before = snapshot(run_dir)
    rc, _, err = cli("bench", "--target", "jetson-local", "--from", run_dir, "--profile")
    assert rc != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "cannot time kernel calls" in err
    assert snapshot(run_dir) == before


def test_deploy_to_jetson_twin_over_loopback_sshd(tmp_path, cli):
    rc, out, err = cli("deploy", "--target", "jetson-local", "--model", "dscnn", "--method", "mag1",
                       "--ratio", "0.25", "--repair", "none", "--runs", "3", "--out", tmp_path)
    assert rc == 0, err
    r = json.loads((tmp_path / "result.json").read_text())
    assert r["backend"] == "onnxruntime" and r["latency"]["kind"] == "measured" and r["latency"]["unit"] == "ms"
    assert "not Jetson" in r["device"]  # twin numbers are this host's, and say so
    assert r["output_crc_match"] is True and r["flash"] == (tmp_path / "build-input/model.onnx").stat().st_size


def test_too_big_model_is_refused_before_any_build(tmp_path, cli):
    rc, out, err = cli("deploy", "--target", "nano33ble-qemu", "--model", "vgg11_bn", "--ratio", "0",
                       "--repair", "none", "--out", tmp_path)
    assert rc != 0 and "Traceback" not in err
    msg = err.strip().splitlines()[-1]
    assert "Flash" in msg and "--ratio" in msg  # says what is needed and which ratio would fit
    assert not (tmp_path / "build").exists() and not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("args,match", [
    (["--target", "nano99"], "unknown target"),
    (["--target", "nano33ble-qemu", "--ratio", "1.5"], "--ratio"),
    (["--target", "nano33ble-qemu", "--method", "prune"], "unknown method"),
    (["--target", "nano33ble-qemu", "--backend", "tflm"], "tflm"),
    (["--target", "jetson-local", "--backend", "edgefold"], "edgefold"),
])
def test_bad_deploy_input_is_one_line(tmp_path, cli, args, match):
    rc, out, err = cli("deploy", "--model", "dscnn", "--out", tmp_path / "o", *args)
    assert rc != 0 and match in err and "Traceback" not in err
    assert not (tmp_path / "o" / "result.json").exists()
