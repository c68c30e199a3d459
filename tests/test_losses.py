"""The method's losses against hand computations."""

import math

import torch

from lifelong_monodepth.training.losses import distillation_loss, uncertainty_depth_loss


def test_depth_loss_matches_hand_computation_and_ignores_invalid() -> None:
    depth = torch.tensor([[[[2.0, 4.0], [6.0, 8.0]]]])
    log_var = torch.tensor([[[[0.0, 1.0], [5.0, -1.0]]]])
    target = torch.tensor([[[[1.0, 4.0], [0.0, 10.0]]]])  # the 0 is invalid: (6, u=5) must not count
    mask = target > 0
    median = 4.0  # median of the valid targets 1, 4, 10
    terms = [
        math.exp(-0.0) * ((2 - 1) / median) ** 2 + 2 * 0.0,
        math.exp(-1.0) * ((4 - 4) / median) ** 2 + 2 * 1.0,
        math.exp(1.0) * ((8 - 10) / median) ** 2 + 2 * -1.0,
    ]
    loss = uncertainty_depth_loss(depth, log_var, target, mask)
    assert math.isclose(float(loss), sum(terms) / 3, rel_tol=1e-6)


def test_depth_loss_upsamples_prediction_to_ground_truth() -> None:
    depth = torch.full((1, 1, 2, 2), 3.0)
    target = torch.full((1, 1, 4, 4), 3.0)
    loss = uncertainty_depth_loss(depth, torch.zeros_like(depth), target, target > 0)
    assert float(loss) == 0.0


def test_depth_loss_with_no_valid_pixel_is_finite_zero_with_gradient() -> None:
    depth = torch.rand(2, 1, 4, 4, requires_grad=True)
    log_var = torch.zeros(2, 1, 4, 4, requires_grad=True)
    target = torch.zeros(2, 1, 4, 4)
    loss = uncertainty_depth_loss(depth, log_var, target, target > 0)
    assert torch.isfinite(loss) and float(loss) == 0.0
    loss.backward()
    assert depth.grad is not None and torch.all(depth.grad == 0)


def test_distillation_zero_for_identical_positive_otherwise() -> None:
    depth, log_var = torch.rand(2, 1, 4, 4) + 0.5, torch.randn(2, 1, 4, 4)
    assert float(distillation_loss(depth, log_var, depth.clone(), log_var.clone())) == 0.0
    assert float(distillation_loss(depth * 1.1, log_var, depth, log_var)) > 0.0
    assert float(distillation_loss(depth, log_var + 0.1, depth, log_var)) > 0.0


def test_distillation_matches_hand_computation() -> None:
    teacher_d = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    teacher_u = torch.tensor([[[[-2.0, 1.0, 4.0]]]])
    student_d = torch.tensor([[[[1.0, 3.0, 3.0]]]])
    student_u = torch.tensor([[[[-2.0, 1.0, 2.0]]]])
    m, m_u = 2.0, 2.0  # median depth 2; median |u| of (2, 1, 4) = 2
    expected = ((0 + 1 / m + 0) + (0 + 0 + 2 / m_u)) / 3
    assert math.isclose(
        float(distillation_loss(student_d, student_u, teacher_d, teacher_u)), expected, rel_tol=1e-6
    )
