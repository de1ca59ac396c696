"""create_model arguments, errors, specs, the 4-D channel shuffle and the CLI."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import InvalidInputError, UnknownNameError  # noqa: E402
from edgekit.models import (  # noqa: E402
    ModelSpec,
    count_params,
    create_model,
    get_model_spec,
    list_models,
)

REQUIRED = [
    "lenet300_100", "lenet5", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large",
    "mobilenet_v3_small", "shufflenet_v1", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "espnet",
    "espnet_cls", "espnetv2", "espnetv2_cls",
]


def test_required_names_are_registered_with_specs():
    assert set(REQUIRED) <= set(list_models())
    assert list_models("*mobile*") == sorted(list_models("*mobile*"))
    assert "mobilenet_v2" in list_models("*mobile*")
    spec = get_model_spec("espnet")
    assert isinstance(spec, ModelSpec)
    assert (spec.task, spec.small_input_size) == ("segmentation", 64)
    assert get_model_spec("lenet5").input_size == 28
    assert get_model_spec("mobilenet_v2").num_classes == 1000


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean: mobilenet_v2"):
        create_model("mobilenet_v22")
    with pytest.raises(UnknownNameError):
        get_model_spec("resnet50")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "shufflenet_v1", "groups": 5}, "groups must be one of"),
    ({"name": "mobilenet_v2", "input_size": 8}, "input_size >= 17"),
    ({"name": "espnet", "input_size": 60}, "multiple of 8"),
    ({"name": "mobilenet_v1", "depth": 3}, "does not take depth"),
    ({"name": "mobilenet_v1", "width_mult": -1.0}, "width_mult must be"),
    ({"name": "lenet5", "num_classes": 0}, "num_classes must be"),
    ({"name": "lenet5", "in_channels": True}, "in_channels must be"),
    ({"name": "espnet", "num_classes": 2}, "num_classes >= 5"),
])
def test_bad_arguments_are_invalid_input(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        create_model(**kwargs)


def test_variant_args_and_small_defaults_are_recorded():
    half = create_model("mobilenet_v1", width_mult=0.5)
    assert half.edgekit_config == {"name": "mobilenet_v1", "num_classes": 1000,
                                   "in_channels": 3, "input_size": 224, "width_mult": 0.5}
    assert count_params(half) < count_params(create_model("mobilenet_v1")) / 2
    small = create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=28)
    assert small.edgekit_config["width_mult"] == get_model_spec("mobilenet_v2").small_defaults[
        "width_mult"]
    wide = create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=28,
                        width_mult=1.0)
    assert wide.edgekit_config["width_mult"] == 1.0
    for g in (1, 2, 4, 8):
        assert create_model("shufflenet_v1", groups=g, num_classes=10, in_channels=1,
                            input_size=32)(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_small_inputs_keep_feature_maps_at_least_2x2():
    seen = {}
    model = create_model("mobilenet_v3_small", num_classes=10, in_channels=1, input_size=28)
    model.features[-1].register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model(torch.zeros(1, 1, 28, 28))
    assert seen["shape"][-2:] == (2, 2)


def _rank5_shuffle_ops(path):
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    bad, seen = [], 0
    for node in model.graph.node:
        if node.op_type == "Transpose":
            seen += 1
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), [])
            if len(perm) > 4 or ranks.get(node.output[0], 0) > 4:
                bad.append(node.name)
        if node.op_type == "Reshape":
            seen += 1
            if node.output[0] not in ranks or ranks[node.output[0]] > 4:
                bad.append(node.name)
    return seen, bad


@pytest.mark.parametrize("name", ["shufflenet_v1", "shufflenet_v2_x0_5", "espnetv2"])
def test_channel_shuffle_exports_as_4d_ops_only(name, tmp_path, small_model):
    pytest.importorskip("onnx")
    model = small_model(name).eval()
    cfg = model.edgekit_config
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(2, 1, cfg["input_size"], cfg["input_size"]),),
                      str(path), dynamo=False, opset_version=17)
    seen, bad = _rank5_shuffle_ops(path)
    assert seen >= 2  # the shuffles are there ...
    assert bad == []  # ... and none of them is rank 5


def test_rank5_check_catches_the_classic_5d_shuffle(tmp_path):
    pytest.importorskip("onnx")

    class Shuffle5d(torch.nn.Module):
        def forward(self, x):
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    path = tmp_path / "s.onnx"
    torch.onnx.export(Shuffle5d(), (torch.zeros(1, 4, 3, 3),), str(path), dynamo=False,
                      opset_version=17)
    seen, bad = _rank5_shuffle_ops(path)
    assert seen and bad


def test_cli_prints_table_and_rejects_unknown_names(capsys):
    from edgekit.cli import main

    assert main(["models", "shufflenet_v2_x*", "--input-size", "32", "--in-channels", "1",
                 "--num-classes", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["name", "family", "task", "input", "params"]
    row = next(line for line in lines if line.startswith("shufflenet_v2_x0_5 "))
    small = create_model("shufflenet_v2_x0_5", num_classes=10, in_channels=1, input_size=32)
    assert f"{count_params(small) / 1e3:.2f}K" in row and "1x32x32" in row
    assert len(lines) == 5

    assert main(["models", "mobilenet_v22"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "did you mean: mobilenet_v2" in err
    assert main(["models", "zz*"]) == 2
    assert "no registered model matches" in capsys.readouterr().err
