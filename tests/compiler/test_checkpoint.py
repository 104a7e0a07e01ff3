import pytest
import torch
from edgefold.compiler import zoo
from edgefold.compiler.checkpoint import ModelSpec, load_model, resolve, save_model

from edgefold.core.errors import EdgefoldError


def test_roundtrip_identical_outputs(tmp_path):
    spec = ModelSpec(name="resnet8", input_shape=zoo.input_shape("resnet8"))
    m = zoo.build("resnet8").eval()
    save_model(tmp_path / "m.pt", m, spec, {"accuracy": 1.0})
    loaded = load_model(tmp_path / "m.pt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(m(x), loaded.model(x))
    assert loaded.meta["accuracy"] == 1.0


def test_bare_state_dict_needs_architecture(tmp_path):
    torch.save(zoo.build("dscnn").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(EdgefoldError, match="bare state_dict"):
        load_model(tmp_path / "sd.pt")
    assert resolve(model="dscnn", weights=str(tmp_path / "sd.pt")).spec.name == "dscnn"


@pytest.mark.parametrize("content,match", [(b"not a torch file", "not a readable torch file"), (None, "not found")])
def test_bad_checkpoint_files(tmp_path, content, match):
    p = tmp_path / "bad.pt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(EdgefoldError, match=match):
        resolve(model="resnet8", weights=str(p))


def test_pickled_code_is_refused(tmp_path):
    torch.save(zoo.build("dscnn"), tmp_path / "full.pt")  # a whole pickled nn.Module
    with pytest.raises(EdgefoldError, match="pickled code"):
        resolve(model="dscnn", weights=str(tmp_path / "full.pt"))
    assert resolve(model="dscnn", weights=str(tmp_path / "full.pt"), trust=True).model is not None


def test_wrong_input_shape_and_factory_errors():
    with pytest.raises(EdgefoldError, match="does not fit the model"):
        resolve(model="resnet8", input_shape="1,1,49,10")
    with pytest.raises(EdgefoldError, match="cannot import factory module"):
        resolve(factory="no_such_pkg.nets:build", input_shape="1,3,32,32")
    with pytest.raises(EdgefoldError, match="unknown model"):
        resolve(model="resnet9000")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("kind", ["edgefold", "state_dict"])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, bad, kind):
    m = zoo.build("dscnn")
    key = next(k for k, v in m.state_dict().items() if v.is_floating_point() and v.dim() > 1)
    with torch.no_grad():
        m.state_dict()[key].view(-1)[3] = bad
    p = tmp_path / "bad.pt"
    if kind == "edgefold":
        save_model(p, m, ModelSpec(name="dscnn", input_shape=zoo.input_shape("dscnn")))
    else:
        torch.save(m.state_dict(), p)
    with pytest.raises(EdgefoldError, match=rf"tensor '{key}' has 1 NaN/Inf value") as e:
        resolve(model="dscnn", weights=str(p))
    assert "\n" not in str(e.value)


def test_state_dict_of_another_architecture_is_not_resized(tmp_path):
    """Same layer names, other shapes (a 5-class head): refused with the mismatch, not resized to crash later."""
    torch.save(zoo.build("resnet8", num_classes=5).state_dict(), tmp_path / "five.pt")
    with pytest.raises(EdgefoldError, match=r"do not fit resnet8: .*size mismatch for fc\.weight") as e:
        resolve(model="resnet8", weights=str(tmp_path / "five.pt"))
    assert "\n" not in str(e.value)
    torch.save(zoo.build("dscnn").state_dict(), tmp_path / "dscnn.pt")
    with pytest.raises(EdgefoldError, match="do not fit resnet8"):
        resolve(model="resnet8", weights=str(tmp_path / "dscnn.pt"))


def test_factory_is_not_replaced_by_a_zoo_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "ef_ckpt_user.py").write_text(
        "from edgefold.compiler import zoo\n\ndef build():\n    return zoo.build('resnet8')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ModelSpec(name="resnet8", input_shape=zoo.input_shape("resnet8"))
    save_model(tmp_path / "zoo.pt", zoo.build("resnet8"), spec)
    with pytest.raises(EdgefoldError, match=r"holds zoo model 'resnet8', not --factory ef_ckpt_user:build"):
        resolve(factory="ef_ckpt_user:build", input_shape="1,3,32,32", weights=str(tmp_path / "zoo.pt"))
    # the other way round: a factory checkpoint named as a zoo model
    fspec = ModelSpec(factory="ef_ckpt_user:build", input_shape=(1, 3, 32, 32))
    save_model(tmp_path / "fac.pt", zoo.build("resnet8"), fspec)
    with pytest.raises(EdgefoldError, match=r"holds --factory ef_ckpt_user:build, not zoo model 'resnet8'"):
        resolve(model="resnet8", weights=str(tmp_path / "fac.pt"))
    # the same factory loads
    got = resolve(factory="ef_ckpt_user:build", input_shape="1,3,32,32", weights=str(tmp_path / "fac.pt"))
    assert got.spec.factory == "ef_ckpt_user:build"


def test_nan_checkpoint_fails_compress_with_one_line(tmp_path, cli):
    m = zoo.build("dscnn")
    with torch.no_grad():
        next(iter(m.parameters())).view(-1)[0] = float("nan")
    torch.save(m.state_dict(), tmp_path / "nan.pt")
    rc, _, err = cli("compress", "--model", "dscnn", "--weights", tmp_path / "nan.pt", "--method", "mag1",
                     "--ratio", "0.25", "--repair", "none", "--out", tmp_path / "out")
    assert rc != 0 and "NaN/Inf" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "model.pt").exists()
