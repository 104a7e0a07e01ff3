"""The model in the user's own firmware: model.h compiles as C++11/14 (extern "C", decimal float macros that read
back exactly), the Arduino library's example compiles with arm-none-eabi-g++ against the stub Arduino headers and, on
the host, links and computes what TFLM computes; two models with different prefixes link into one program; the C
package builds with CMake and its example runs."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from edgefold.compiler.check.tflm import tflm_invoke
from edgefold.compiler.codegen import check_prefix, generate
from edgefold.compiler.codegen.package import make_package

from edgefold.core.errors import EdgefoldError

HERE = Path(__file__).parent
TINY = (HERE / "data" / "tiny_int8.tflite").read_bytes()
STUBS = HERE / "stubs"
ZP_IN = -10  # tiny_int8.tflite's input zero point

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("g++") is None, reason="no host gcc/g++")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
    return r


def _expected(x: bytes) -> list[int]:
    qx = np.frombuffer(x, np.int8).reshape(1, 8, 8, 1)
    return [int(v) for v in tflm_invoke(TINY, qx).reshape(-1)]


def _printed(stdout: str, tag: str = "output:") -> list[int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(tag))
    return [int(v) for v in line[len(tag):].split()]


def _objects(srcs: list[Path], out: Path, inc: list[Path], cc: str = "gcc") -> list[Path]:
    objs = []
    for s in srcs:
        o = out / f"{s.parent.name}_{s.stem}.o"
        _run([cc, "-std=c99", "-O1", "-Wall", "-Werror", *(f"-I{d}" for d in inc), "-c", s, "-o", o])
        objs.append(o)
    return objs


@needs_gcc
@pytest.mark.parametrize("std", ["c++11", "c++14"])
def test_model_h_is_cpp11_and_its_scales_read_back_exactly(tmp_path, std):
    man = generate(TINY, tmp_path / "cg")
    prog = tmp_path / "t.cpp"
    prog.write_text('#include "model.h"\n#include <stdio.h>\n'
                    'int main() { printf("%a %a\\n", (double)EF_INPUT_SCALE, (double)EF_OUTPUT_SCALE); '
                    "return EF_INPUT_BYTES == 64 ? 0 : 1; }\n")
    _run(["g++", f"-std={std}", "-pedantic", "-Wall", "-Werror", f"-I{tmp_path / 'cg'}", prog, "-o", tmp_path / "t"])
    got = _run([tmp_path / "t"]).stdout.split()
    want = [float(np.float32(man.input.scale)).hex(), float(np.float32(man.output.scale)).hex()]
    assert [float.fromhex(v) for v in got] == [float.fromhex(v) for v in want]


def test_prefix_is_checked():
    assert check_prefix("kws") == "kws_" and check_prefix("kws_") == "kws_"
    for bad in ("", "1x", "_x", "a-b", "a b"):
        with pytest.raises(EdgefoldError, match="--prefix"):
            check_prefix(bad)


def test_arduino_library_layout_and_zip(tmp_path):
    pkg = make_package(TINY, tmp_path, "arduino-library", "kws", label="tiny")
    assert pkg.name == "kws_model" and pkg.path == tmp_path / "kws_model" and pkg.archive == tmp_path / "kws_model.zip"
    props = dict(ln.split("=", 1) for ln in (pkg.path / "library.properties").read_text().splitlines())
    assert props["name"] == "kws_model" and props["includes"] == "kws_model.h" and props["dot_a_linkage"] == "true"
    assert {"version", "author", "maintainer", "sentence", "paragraph", "category", "architectures"} <= set(props)
    h = (pkg.path / "src" / "kws_model.h").read_text()
    assert "int kws_model_run(" in h and "#define KWS_INPUT_BYTES 64" in h and 'extern "C"' in h
    assert "EF_" not in h and "0x" not in h  # every macro prefixed; no hex floats
    with zipfile.ZipFile(pkg.archive) as z:  # what `arduino-cli lib install --zip-path` expects: one top folder
        names = z.namelist()
    assert {n.split("/")[0] for n in names} == {"kws_model"}
    assert {"kws_model/library.properties", "kws_model/src/kws_model.c", "kws_model/src/conv_2d.c",
            "kws_model/src/ef_runtime.h", "kws_model/examples/run_model/run_model.ino"} <= set(names)
    assert not list(tmp_path.glob(".kws_model.*"))  # the staging folder is gone


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="no arm-none-eabi-g++")
@pytest.mark.parametrize("std", ["gnu++11", "gnu++14"])
def test_arduino_example_compiles_with_arm_gpp(tmp_path, std):
    pkg = make_package(TINY, tmp_path, "arduino-library", "kws", label="tiny")
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]
    # the Arduino builder compiles a sketch as C++ with Arduino.h included first, and the library's .c files as C
    _run(["arm-none-eabi-g++", f"-std={std}", *cpu, "-Wall", "-Werror", "-fno-exceptions", "-fno-rtti", "-x", "c++",
          "-include", "Arduino.h", f"-I{STUBS}", f"-I{pkg.path / 'src'}", "-c",
          pkg.path / "examples" / "run_model" / "run_model.ino", "-o", tmp_path / "sketch.o"])
    for c in sorted((pkg.path / "src").glob("*.c")):
        _run(["arm-none-eabi-gcc", "-std=gnu11", *cpu, "-Wall", "-Werror", f"-I{pkg.path / 'src'}", "-c", c, "-o",
              tmp_path / f"{c.stem}.o"])
    nm = _run(["arm-none-eabi-nm", tmp_path / "sketch.o"]).stdout
    assert " U kws_model_run" in nm  # the C symbol, not a C++-mangled one


@needs_gcc
def test_arduino_example_links_and_computes_what_tflm_computes(tmp_path):
    pkg = make_package(TINY, tmp_path, "arduino-library", "kws", label="tiny")
    src = pkg.path / "src"
    sketch = tmp_path / "sketch.o"
    _run(["g++", "-std=gnu++11", "-O1", "-Wall", "-Werror", "-x", "c++", "-include", "Arduino.h", f"-I{STUBS}",
          f"-I{src}", "-c", pkg.path / "examples" / "run_model" / "run_model.ino", "-o", sketch])
    host = tmp_path / "host.o"
    _run(["g++", "-std=gnu++11", "-O1", f"-I{STUBS}", "-c", HERE / "c" / "arduino_host.cpp", "-o", host])
    objs = _objects(sorted(src.glob("*.c")), tmp_path, [src])
    _run(["g++", sketch, host, *objs, "-lm", "-o", tmp_path / "sketch"])
    out = _run([tmp_path / "sketch"]).stdout
    assert _printed(out) == _expected(bytes([ZP_IN & 0xFF]) * 64)
    assert "top: " in out and " us" in out


@needs_gcc
def test_two_models_with_different_prefixes_link_into_one_program(tmp_path):
    """Each package is a static archive with its own copy of the runtime: the linker takes each kernel once."""
    libs, x = [], bytes(((i * 37) % 256) for i in range(64))
    for prefix in ("kws_", "vision_"):
        pkg = make_package(TINY, tmp_path / prefix, "c-package", prefix, label="tiny")
        objs = _objects(sorted((pkg.path / "src").glob("*.c")), tmp_path / prefix,
                        [pkg.path / "src", pkg.path / "include"])
        lib = tmp_path / f"lib{pkg.name}.a"
        _run(["ar", "rcs", lib, *objs])
        libs.append((lib, pkg.path / "include"))
    (tmp_path / "x.bin").write_bytes(x)
    main = tmp_path / "main.c"
    main.write_text("""#include <stdio.h>
#include "kws_model.h"
#include "vision_model.h"
int main(int argc, char **argv) {
    int8_t in[KWS_INPUT_BYTES], a[KWS_OUTPUT_BYTES], b[VISION_OUTPUT_BYTES];
    FILE *f = fopen(argv[1], "rb");
    if (argc < 2 || f == NULL || fread(in, 1, sizeof in, f) != sizeof in) return 2;
    fclose(f);
    if (kws_model_run(in, a) != 0 || vision_model_run(in, b) != 0) return 1;
    printf("kws:"); for (int i = 0; i < KWS_OUTPUT_BYTES; ++i) printf(" %d", a[i]);
    printf("\\nvision:"); for (int i = 0; i < VISION_OUTPUT_BYTES; ++i) printf(" %d", b[i]);
    printf("\\n");
    return 0;
}
""")
    _run(["gcc", "-std=c99", "-Wall", "-Werror", *(f"-I{inc}" for _, inc in libs), main, *(lib for lib, _ in libs),
          "-lm", "-o", tmp_path / "two"])
    out = _run([tmp_path / "two", tmp_path / "x.bin"]).stdout
    assert _printed(out, "kws:") == _printed(out, "vision:") == _expected(x)
    nm = _run(["nm", tmp_path / "two"]).stdout
    assert nm.count(" T ef_conv_2d") <= 1 and " T kws_model_run" in nm and " T vision_model_run" in nm


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("gcc") is None, reason="no cmake / gcc")
def test_c_package_builds_with_cmake_and_its_example_runs(tmp_path):
    pkg = make_package(TINY, tmp_path, "c-package", label="tiny")
    assert pkg.name == "ef_model" and (pkg.path / "include" / "ef_model.h").is_file()
    build = tmp_path / "build"
    _run(["cmake", "-S", pkg.path, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_C_FLAGS=-Wall -Werror"])
    _run(["cmake", "--build", build])
    x = bytes(((i * 91 + 7) % 256) for i in range(64))
    (tmp_path / "x.bin").write_bytes(x)
    exe = build / "ef_model_example"
    assert _printed(_run([exe, tmp_path / "x.bin"]).stdout) == _expected(x)
    assert _printed(_run([exe]).stdout) == _expected(bytes([ZP_IN & 0xFF]) * 64)
    for n in (63, 65):
        (tmp_path / "bad.bin").write_bytes(bytes(n))
        bad = subprocess.run([exe, tmp_path / "bad.bin"], capture_output=True, text=True)
        assert bad.returncode == 2 and "the model's input is 64 bytes" in bad.stderr
    assert (build / "libef_model.a").is_file()
