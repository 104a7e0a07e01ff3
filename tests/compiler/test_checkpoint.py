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
