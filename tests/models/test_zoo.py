"""Every registered model: forward/backward at its small size, config round trip, ONNX."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.models import create_model, get_model_spec, list_models  # noqa: E402

ALL = list_models()


def _input(model, batch: int = 2) -> torch.Tensor:
    cfg = model.edgekit_config
    gen = torch.Generator().manual_seed(0)
    return torch.rand(batch, cfg["in_channels"], cfg["input_size"], cfg["input_size"],
                      generator=gen)


@pytest.mark.parametrize("name", ALL)
def test_small_variant_forward_backward_and_rebuild(name, small_model):
    torch.manual_seed(0)
    model = small_model(name)
    cfg = model.edgekit_config
    x = _input(model)
    out = model(x)
    if get_model_spec(name).task == "segmentation":
        assert out.shape == (2, cfg["num_classes"], cfg["input_size"], cfg["input_size"])
        target = torch.randint(0, cfg["num_classes"], (2, cfg["input_size"], cfg["input_size"]))
    else:
        assert out.shape == (2, cfg["num_classes"])
        target = torch.tensor([1, 3])
    torch.nn.functional.cross_entropy(out, target).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    rebuilt = create_model(**cfg)  # the config a checkpoint stores rebuilds the architecture
    assert rebuilt.edgekit_config == cfg
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize("name", ALL)
def test_wrong_channel_count_is_a_clear_error(name, small_model):
    model = small_model(name).eval()
    cfg = model.edgekit_config
    with pytest.raises(InvalidInputError, match="expected input"):
        model(torch.zeros(1, cfg["in_channels"] + 2, cfg["input_size"], cfg["input_size"]))


@pytest.mark.parametrize("name", ALL)
def test_onnx_export_matches_torch_in_onnxruntime(name, tmp_path, small_model):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = small_model(name).eval()
    x = _input(model)
    with torch.no_grad():
        expected = model(x).numpy()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    assert got.shape == expected.shape
    scale = max(1.0, float(abs(expected).max()))
    assert abs(got - expected).max() <= 1e-4 * scale
