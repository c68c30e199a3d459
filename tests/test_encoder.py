"""The shared encoder: feature shapes, the packaged-weights key mapping, local weights and the error paths."""

import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from lifelong_monodepth.models.encoder import (
    Encoder,
    efficientnet_lite0_package_key_map,
    load_efficientnet_lite0_package_weights,
    package_weights_path,
)

IMAGENET_MILITARY_UNIFORM = 652  # the textbook label of matplotlib's Grace Hopper photograph


@pytest.fixture(scope="module")
def package_state() -> dict[str, torch.Tensor]:
    return torch.load(package_weights_path(), map_location="cpu", weights_only=True)


def _input(height: int = 64, width: int = 96) -> torch.Tensor:
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "resnet18"])
def test_four_levels_at_strides_4_to_32(backbone: str) -> None:
    encoder = Encoder(backbone)
    features = encoder(_input())
    assert encoder.reductions == [4, 8, 16, 32]
    assert encoder.channels == timm.create_model(backbone, features_only=True).feature_info.channels()[1:]
    assert [f.shape[1] for f in features] == encoder.channels
    assert [tuple(f.shape[2:]) for f in features] == [(64 // r, 96 // r) for r in encoder.reductions]


def test_backbone_without_the_four_strides_is_refused() -> None:
    with pytest.raises(ValueError, match=r"needs \[4, 8, 16, 32\]"):
        Encoder("vit_tiny_patch16_224")


def test_package_weights_use_every_file_tensor(package_state: dict[str, torch.Tensor]) -> None:
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    report = load_efficientnet_lite0_package_weights(full)
    assert report["loaded"] == report["total"] == len(package_state) == len(full.state_dict())
    assert report["unused"] == []

    encoder = Encoder(pretrained="package")
    head = {k for k in package_state if k.split(".")[0] in ("_conv_head", "_bn1", "_fc")}
    assert len(head) == 8
    assert set(encoder.weights_report["unused"]) == head
    loaded = encoder.weights_report["loaded"]
    assert loaded == len(package_state) - len(head) == len(encoder.model.state_dict())
    own = encoder.model.state_dict()
    for file_key, timm_key in [
        ("_conv_stem.weight", "conv_stem.weight"),
        ("_bn0.running_var", "bn1.running_var"),
        ("_blocks.0._bn1.weight", "blocks.0.0.bn1.weight"),  # no expansion: _bn1 follows the depthwise conv
        ("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
        ("_blocks.1._bn1.running_mean", "blocks.1.0.bn2.running_mean"),  # expansion shifts the BN names
        ("_blocks.14._bn2.bias", "blocks.5.3.bn3.bias"),
        ("_blocks.15._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
    ]:
        assert torch.equal(own[timm_key], package_state[file_key]), file_key


def test_named_mapping_agrees_with_positional_order(package_state: dict[str, torch.Tensor]) -> None:
    """Two independent derivations (by name, by position) give the same network, and a block swap is seen."""
    named = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_efficientnet_lite0_package_weights(named)
    positional = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    timm_keys = [k for k in positional.state_dict() if not k.endswith("num_batches_tracked")]
    file_keys = [k for k in package_state if not k.endswith("num_batches_tracked")]
    assert len(timm_keys) == len(file_keys) == 247
    pairs = list(zip(timm_keys, file_keys, strict=True))
    positional.load_state_dict({t: package_state[f] for t, f in pairs}, strict=False)
    mapping = efficientnet_lite0_package_key_map(named, package_state)
    assert {t: mapping[f] for t, f in pairs if t != mapping[f]} == {}

    x = _input(96, 128)
    with torch.no_grad():
        reference = named(x)
        assert torch.allclose(positional(x), reference, atol=1e-4)
        stage = positional.blocks[3]  # two same-shaped blocks: a shape check alone would not notice a swap
        state_1, state_2 = stage[1].state_dict(), stage[2].state_dict()
        stage[1].load_state_dict(state_2)
        stage[2].load_state_dict(state_1)
        assert (positional(x) - reference).abs().max() > 1e-2


def _grace_hopper(mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """matplotlib's sample photo, resized and centre-cropped to 224 as in ImageNet evaluation."""
    matplotlib = pytest.importorskip("matplotlib")
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip("matplotlib sample data not installed")
    image = Image.open(path).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_package_weights_are_real_imagenet_weights() -> None:
    encoder = Encoder(pretrained="package")
    x = _grace_hopper(encoder.input_mean, encoder.input_std)
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        random_probs = classifier(x).softmax(-1)
        load_efficientnet_lite0_package_weights(classifier)
        probs = classifier(x).softmax(-1)
    assert IMAGENET_MILITARY_UNIFORM in probs.topk(5).indices[0].tolist()
    assert probs.max() > 0.15 > random_probs.max()


def test_encoder_normalisation_matches_the_packaged_weights(package_state: dict[str, torch.Tensor]) -> None:
    """The stem BN running mean is explained by ImageNet data normalised with the encoder's mean/std.

    Running mean ≈ W · E[x_normalised] summed over the kernel: with 0.5/0.5 (tf_efficientnet_lite0's
    pretrained_cfg) this explains most of it; with ImageNet mean/std E[x_normalised] ≈ 0 explains nothing.
    """
    encoder = Encoder()
    assert encoder.input_mean == encoder.input_std == (0.5, 0.5, 0.5)
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406])
    expected = (imagenet_mean - torch.tensor(encoder.input_mean)) / torch.tensor(encoder.input_std)
    predicted = package_state["_conv_stem.weight"].sum((2, 3)) @ expected
    running_mean = package_state["_bn0.running_mean"]
    residual = ((running_mean - predicted) ** 2).sum() / (running_mean**2).sum()
    assert residual < 0.5
    assert Encoder("resnet18").input_mean == (0.485, 0.456, 0.406)


def test_package_weights_need_tf_efficientnet_lite0() -> None:
    with pytest.raises(ValueError, match="tf_efficientnet_lite0 only.*'resnet18'.*weights_path"):
        Encoder("resnet18", pretrained="package")
    with pytest.raises(ValueError, match="pretrained must be"):
        Encoder(pretrained="imagenet")


def test_weights_path_round_trip(tmp_path: Path) -> None:
    source = Encoder().eval()
    torch.save(source.state_dict(), tmp_path / "encoder.pth")  # keys carry the "model." prefix
    save_file(source.model.state_dict(), str(tmp_path / "encoder.safetensors"))
    x = _input()
    with torch.no_grad():
        expected = source(x)
    for name in ("encoder.pth", "encoder.safetensors"):
        loaded = Encoder(weights_path=str(tmp_path / name)).eval()
        assert loaded.weights_report["unused"] == []
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(loaded(x), expected, strict=True)), name


@pytest.mark.parametrize(
    ("backbone", "timm_key", "file_key"),
    [
        ("tf_efficientnet_lite0", "blocks.2.1.conv_dw.weight", "blocks.2.1.conv_dw.weight"),
        # the features model flattens nn.Sequential names: timm's own loader does the renaming
        ("convnext_atto", "stages_1.blocks.0.conv_dw.weight", "stages.1.blocks.0.conv_dw.weight"),
    ],
)
def test_weights_path_accepts_full_classifier(
    tmp_path: Path, backbone: str, timm_key: str, file_key: str
) -> None:
    classifier = timm.create_model(backbone, pretrained=False)
    torch.save(classifier.state_dict(), tmp_path / "classifier.pt")
    encoder = Encoder(backbone, weights_path=str(tmp_path / "classifier.pt"))
    assert torch.equal(encoder.model.state_dict()[timm_key], classifier.state_dict()[file_key])
    assert any(k.startswith(("classifier.", "head.fc.")) for k in encoder.weights_report["unused"])
    assert encoder.reductions == [4, 8, 16, 32]


def test_weights_path_reports_missing_keys(tmp_path: Path) -> None:
    state = Encoder().model.state_dict()
    del state["blocks.3.1.conv_dw.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing 1 \(blocks\.3\.1\.conv_dw\.weight\)"):
        Encoder(weights_path=str(tmp_path / "partial.pth"))


def test_pretrained_true_offline_gives_a_helpful_error() -> None:
    start = time.perf_counter()
    try:
        Encoder(pretrained=True)
    except RuntimeError as error:
        assert "pretrained=false" in str(error) and "weights_path" in str(error)
        assert "pretrained=package" in str(error)
    else:
        pytest.skip("timm's weights are in the local hub cache")
    assert time.perf_counter() - start < 10
