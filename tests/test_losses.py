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


def test_masked_form_equals_selection_form() -> None:
    """The GPU's synchronisation-free loss is the CPU's boolean-selection loss, gradients included."""
    from lifelong_monodepth.training.losses import _masked_loss

    torch.manual_seed(0)
    target = torch.rand(3, 1, 6, 8) * 9 + 0.5
    target[0, 0, :2] = 0.0  # invalid pixels, a non-finite one too
    target[1, 0, 3, 3] = float("inf")
    mask = torch.rand(3, 1, 6, 8) > 0.2
    depth = (torch.rand(3, 1, 6, 8) * 9 + 0.5).requires_grad_()
    log_var = torch.randn(3, 1, 6, 8).requires_grad_()
    reference = uncertainty_depth_loss(depth, log_var, target, mask)  # CPU: the selection form
    grads = torch.autograd.grad(reference, (depth, log_var))
    valid = mask & torch.isfinite(target) & (target > 0)
    masked = _masked_loss(depth, log_var, target, valid)
    assert torch.allclose(masked, reference, rtol=1e-6, atol=0)
    for a, b in zip(torch.autograd.grad(masked, (depth, log_var)), grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-9)
    empty = _masked_loss(depth, log_var, torch.zeros_like(target), torch.zeros_like(valid))
    assert float(empty) == 0.0 and torch.isfinite(torch.autograd.grad(empty, depth)[0]).all()


def test_losses_run_in_float32_under_autocast() -> None:
    """bf16 head outputs inside an autocast region: the loss is float32 and equals the fp32 loss."""
    depth = torch.rand(2, 1, 4, 4) + 0.5
    log_var = torch.randn(2, 1, 4, 4)
    target = torch.rand(2, 1, 4, 4) + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = uncertainty_depth_loss(depth.bfloat16(), log_var.bfloat16(), target, target > 0)
        distill = distillation_loss(depth.bfloat16(), log_var.bfloat16(), depth, log_var)
    assert loss.dtype == torch.float32 and distill.dtype == torch.float32
    expected = uncertainty_depth_loss(
        depth.bfloat16().float(), log_var.bfloat16().float(), target, target > 0
    )
    assert torch.equal(loss, expected)
