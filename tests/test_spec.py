"""Spec: defaults, YAML round trip, --set overrides, clear rejection of bad keys and values."""
import pytest

from trainwell.core.errors import UserError
from trainwell.core.spec import Spec


def test_defaults_are_complete_and_round_trip_through_yaml(tmp_path):
    spec = Spec()
    path = tmp_path / "spec.yaml"
    spec.to_yaml(path)
    again = Spec.from_yaml(path)
    assert again == spec
    text = path.read_text()
    for section in ("data", "model", "optim", "schedule", "regularize", "train", "stop", "checkpoint"):
        assert f"{section}:" in text
    assert again.optim.name == "adam" and again.optim.lr == 1e-3 and again.stop.restore_best


def test_set_overrides_parse_yaml_values():
    spec = Spec.build(sets=["model.hidden=[64, 32]", "optim.lr=0.01", "train.batch_size=full",
                            "data.features=[squares]", "task=binary", "stop.enabled=false"])
    assert spec.model.hidden == [64, 32]
    assert spec.optim.lr == 0.01
    assert spec.train.batch_size == "full"
    assert spec.data.features == ["squares"]
    assert spec.task == "binary" and spec.stop.enabled is False


def test_sections_and_sets_layer_in_order(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("optim:\n  name: sgd\n  lr: 0.5\nmodel:\n  hidden: [8]\n")
    spec = Spec.build(base, sets=["optim.lr=0.1"], model={"activation": "tanh"})
    assert (spec.optim.name, spec.optim.lr, spec.model.hidden, spec.model.activation) == ("sgd", 0.1, [8], "tanh")


@pytest.mark.parametrize("sets, expected", [
    (["optim.lrr=0.1"], 'Did you mean "lr"'),
    (["optm.lr=0.1"], 'Did you mean "optim"'),
    (["train.epochs=-3"], "train.epochs"),
    (["data.scale=minmax"], "standard"),
    (["task=clasification"], "multiclass"),
    (["optim.lr"], 'no "="'),
])
def test_bad_sets_are_rejected_with_the_fix(sets, expected):
    with pytest.raises(UserError) as err:
        Spec.build(sets=sets)
    assert expected in str(err.value)


def test_unknown_key_in_file_suggests_the_close_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hiden: [4]\n")
    with pytest.raises(UserError, match='Did you mean "hidden"'):
        Spec.from_yaml(path)
