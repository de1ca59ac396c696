"""Third-party modules whose forward returns a tuple ``(logits, aux)`` or a dict
``{"logits": ..., "features": ...}``: compress deploys the classification output (one
output in the file) and verifies it, or refuses with one line naming the outputs before
any work."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

import edgekit  # noqa: E402
from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.models.outputs import OneOutput, choose_output  # noqa: E402
from tests.pipeline.test_pretrained import QUICK, ThirdPartyNet, trained  # noqa: E402, F401


class TupleNet(torch.nn.Module):
    """``(logits, pooled features)``, as nets with an auxiliary head return them."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x.mean((2, 3))


class DictNet(torch.nn.Module):
    """A Hugging Face-style dict of outputs; ``key`` names the logits."""

    def __init__(self, net, key="logits"):
        super().__init__()
        self.net, self.key = net, key

    def forward(self, x):
        return {"features": x.mean((2, 3)), self.key: self.net(x)}


def _digits(n):
    from edgekit.calibration import mnist5k

    data = mnist5k("test")
    return np.asarray(data.x[:n]), data.y[:n]


def test_the_classification_output_is_chosen_by_rule_or_by_name():
    logits, aux = torch.zeros(2, 10), torch.zeros(2, 3)
    assert choose_output(logits, None) is None
    assert choose_output((logits, aux), None) == 0
    assert choose_output((aux, logits), "1") == 1
    assert choose_output({"features": aux, "logits": logits}, None) == "logits"
    assert choose_output({"features": aux, "out": logits}, None) == "out"
    assert choose_output({"features": aux, "scores": logits}, "scores") == "scores"
    with pytest.raises(InvalidInputError, match="index, 0 to 1"):
        choose_output((logits, aux), "2")
    with pytest.raises(InvalidInputError, match="one tensor"):
        choose_output(logits, "logits")
    with pytest.raises(InvalidInputError, match="'aux', 'meta'"):
        choose_output({"aux": aux, "meta": logits}, None)
    with pytest.raises(InvalidInputError, match="not a tensor"):
        choose_output({"logits": [logits]}, None)


def test_one_output_keeps_the_modules_weights_and_answers(trained):  # noqa: F811
    x = torch.from_numpy(_digits(4)[0])
    wrapped = OneOutput(DictNet(trained), "logits")
    torch.testing.assert_close(wrapped(x), trained(x))
    assert set(wrapped.state_dict()) == {f"model.net.{k}" for k in trained.state_dict()}


def test_a_dict_without_an_obvious_key_is_refused_before_any_work(tmp_path):
    x, y = _digits(200)
    with pytest.raises(InvalidInputError) as caught:
        edgekit.compress(DictNet(ThirdPartyNet(), key="scores"), "jetson", data=(x, y),
                         epochs=0, qat_epochs=0, out=tmp_path / "run", **QUICK)
    message = str(caught.value)
    assert "\n" not in message and "'features', 'scores'" in message
    assert "output_key" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "target"), [("tuple", "jetson"), ("dict", "jetson"),
                                              ("tuple", "raspberry-pi-5"),
                                              ("dict", "raspberry-pi-5"),
                                              ("dict", "x86-cpu")])
def test_a_module_with_several_outputs_is_deployed_with_its_logits(trained, tmp_path,  # noqa: F811
                                                                   kind, target):
    """PTQ of the user's module as it is; the deployed file has one output, the logits, and
    matches the trained model in its runtime."""
    module = TupleNet(trained) if kind == "tuple" else DictNet(trained, key="scores")
    chosen = {"tuple": None, "dict": "scores"}[kind]  # the dict's key must be named
    x, y = _digits(600)
    result = edgekit.compress(module, target, data=(x, y), epochs=0, qat_epochs=0,
                              out=tmp_path / "run", output_key=chosen, **QUICK)
    assert result.verification.passed
    expected = 0 if kind == "tuple" else "scores"
    assert result.manifest["input"]["model"]["output"] == expected
    assert result.manifest["recipe"]["output_key"] == chosen
    assert any(f"deploys output {expected!r}" in n for n in result.metrics["notes"])
    deployed = result.deployed  # one output: the 10 logits, not the 1-channel features
    if deployed.suffix == ".onnx":
        import onnx

        outputs = onnx.load(str(deployed)).graph.output
        assert [list(d.dim_value for d in o.type.tensor_type.shape.dim)[1:] for o in outputs] \
            == [[10]]
    else:
        from ai_edge_litert.interpreter import Interpreter

        details = Interpreter(model_path=str(deployed)).get_output_details()
        assert [list(d["shape"][1:]) for d in details] == [[10]]


def test_the_cli_names_the_output_or_says_which_keys_there_are(tmp_path, capsys):
    from edgekit.cli import main

    factory = tmp_path / "net.py"
    factory.write_text(
        "import torch\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(784, 10)\n\n"
        "    def forward(self, x):\n"
        "        return {'embedding': x.flatten(1), 'scores': self.fc(x.flatten(1))}\n\n"
        "def make():\n"
        "    return Net()\n")
    out = tmp_path / "never"
    code = main(["compress", "--model", f"{factory}:make", "--train-limit", "64",
                 "--output-key", "logits", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists() and "\n" not in err
    assert "keys 'embedding', 'scores'" in err and "has no key 'logits'" in err
