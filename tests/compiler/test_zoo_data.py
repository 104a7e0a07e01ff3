import torch
from edgefold.compiler import data, zoo


def test_split_is_fixed_and_disjoint():
    tr, te = data.split_indices()
    assert len(tr) == 1437 and len(te) == 360 and not set(tr) & set(te)
    assert (data.split_indices()[1] == te).all()


def test_every_zoo_model_forwards_on_its_shape():
    for name in zoo.names():
        shape = zoo.input_shape(name)
        x = data.load(shape, "test").x[:2]
        assert x.shape[1:] == shape[1:]
        assert zoo.build(name).eval()(x).shape == (2, 10)


def test_resnet18_is_the_cifar_variant():
    assert abs(sum(p.numel() for p in zoo.build("resnet18").parameters()) - 11.17e6) < 0.05e6


def test_cli_train_reports_accuracy(cli, tmp_path):
    rc, out, _ = cli("train", "--model", "dscnn", "--epochs", "1", "--out", tmp_path / "d.pt")
    assert rc == 0 and "% on digits test" in out and (tmp_path / "d.pt").exists()
    assert torch.load(tmp_path / "d.pt", weights_only=True)["meta"]["accuracy"] > 10
