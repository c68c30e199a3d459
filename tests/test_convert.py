"""Original Lifelong-MonoDepth checkpoints → this project (a random network in the original layout)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import FAST_OVERRIDES, compose_config, tiny_domains_at
from lifelong_monodepth.cli.main import execute
from lifelong_monodepth.convert import ConversionError, main, original_key_map
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.models.fusion import MultiScaleFeatureFusion
from lifelong_monodepth.models.selection import SELECTORS
from lifelong_monodepth.training.loading import load_module
from original_reference import OriginalNet, randomise_batchnorm

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``NK.pth.tar`` as the original training script saves it (DataParallel ``module.`` prefix)."""
    torch.manual_seed(0)
    net = OriginalNet(num_tasks=2)
    randomise_batchnorm(net)
    net.eval()
    path = tmp_path_factory.mktemp("original") / "NK.pth.tar"
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"epoch": 20, "state_dict": state}, path)
    return {"net": net, "path": path, "state": state}


def test_every_tensor_lands_and_outputs_match_the_reference(original: dict, tmp_path: Path) -> None:
    out = tmp_path / "NK.ckpt"
    assert main([str(original["path"]), "--domains", "NK", "--out", str(out)]) == 0
    mapping = original_key_map(list(original["state"]), "NK")
    assert len(mapping) == len(original["state"]) == len(set(mapping.values()))  # one-to-one, nothing left
    module = load_module(out)  # the checkpoint alone rebuilds the model, as for mode=test
    own = module.net.state_dict()
    for key, target in mapping.items():
        assert torch.equal(own[target], original["state"][key]), key
    assert module.net.domains == ["N", "K"] and module.learned == ["N", "K"]
    assert module.domain_info["K"]["max_depth"] == 80.0 and module.domain_info["N"]["max_depth"] == 10.0

    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        reference, ref_fused = original["net"]((images - IMAGENET_MEAN) / IMAGENET_STD)
        ours = module.net(images)
    torch.testing.assert_close(ours.fused, ref_fused, rtol=1e-4, atol=1e-5)
    for task, letter in enumerate("NK"):
        torch.testing.assert_close(ours.depth[letter], reference[task][0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.log_var[letter], reference[task][1], rtol=1e-4, atol=1e-5)

    # mode=test runs on the converted file; the selector (none in the original file) is fitted on replay.
    cfg = compose_config(
        tmp_path / "eval", [*FAST_OVERRIDES, "mode=test", f"ckpt={out}"], tiny_domains_at(tmp_path / "data")
    )
    summary = execute(cfg)
    assert set(summary["selector_comparison"]) == set(SELECTORS)  # every selector was fitted and compared
    assert all(math.isfinite(summary["final"][letter]["prior"]["rmse"]) for letter in "NK")


def test_wrong_domain_count_and_foreign_files_are_refused(
    original: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(original["path"]), "--domains", "NKS", "--out", str(tmp_path / "x.ckpt")]) == 2
    assert "names 3 domain(s) but the file has predictors ['task0', 'task1']" in capsys.readouterr().err
    with pytest.raises(ConversionError, match="task1 but --domains 'N' names only 1"):
        original_key_map(list(original["state"]), "N")
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, other)
    assert main([str(other), "--domains", "N", "--out", str(tmp_path / "y.ckpt")]) == 2
    assert "not in the original Lifelong-MonoDepth layout" in capsys.readouterr().err


def test_mode_test_on_an_original_file_points_at_convert(original: dict) -> None:
    with pytest.raises(
        ConfigError,
        match=r"original Lifelong-MonoDepth checkpoint\. Convert it first: "
        r"python -m lifelong_monodepth\.convert .*NK\.pth\.tar --domains",
    ):
        load_module(original["path"])


def test_fusion_without_attention_bias_has_the_papers_parameter_count() -> None:
    fusion = MultiScaleFeatureFusion([64, 128, 256, 512], kernel_size=5, se_bias=False)
    assert sum(p.numel() for p in fusion.parameters()) == 530_176
