"""The training objective and configuration (fast, in-process)."""

import dataclasses
import json
import math

import numpy as np
import pytest
import skimage.data
import torch
from conftest import randomize

import irnlib.train as tr
import irnlib.training.config as training_config
from irnlib.data.folders import list_images
from irnlib.data.patches import TrainingPatches
from irnlib.imaging.imresize import imresize
from irnlib.model.network import IRN, quantize
from irnlib.train import (
    IRNObjective,
    IterationBatches,
    TrainConfig,
    TrainingSamples,
    backward_loss,
    distr_factor,
    distribution_loss,
    forward_loss,
    grid_loss,
    lr_factor,
    main,
    make_config,
    parse_overrides,
    range_loss,
    resolve_amp,
    run_network,
    unit_hinge_loss,
    unit_kl_loss,
)
from irnlib.training.errors import SettingsError

# ---------------------------------------------------------------- each loss term by hand


def test_forward_loss_is_squared_error_summed_per_image_averaged_over_batch():
    lr = torch.tensor([[[[0.5, 0.25]]], [[[1.0, 0.0]]]])  # (2, 1, 1, 2)
    ref = torch.tensor([[[[0.0, 0.25]]], [[[0.5, 0.5]]]])
    # image 0: 0.5² + 0 = 0.25; image 1: 0.5² + 0.5² = 0.5; mean over the batch 0.375
    assert forward_loss(lr, ref).item() == pytest.approx(0.375)


def test_distribution_loss_is_sum_of_squares_averaged_over_batch():
    z = torch.tensor([[[[1.0, -2.0]], [[0.5, 0.0]]], [[[3.0, 0.0]], [[0.0, 0.0]]]])  # (2, 2, 1, 2)
    # image 0: 1 + 4 + 0.25 = 5.25; image 1: 9; mean 7.125
    assert distribution_loss(z).item() == pytest.approx(7.125)


def test_unit_kl_loss_is_the_kl_to_a_unit_gaussian_of_each_images_mean_square():
    z = torch.tensor([[[[1.0, -2.0]], [[0.5, 0.0]]], [[[3.0, 0.0]], [[0.0, 0.0]]]])  # (2, 2, 1, 2), N = 4
    # image 0: m = 5.25 / 4; image 1: m = 9 / 4; each N/2 · (m − 1 − ln m), averaged over the batch
    by_hand = [2 * (m - 1 - math.log(m)) for m in (5.25 / 4, 9 / 4)]
    assert unit_kl_loss(z).item() == pytest.approx(sum(by_hand) / 2, rel=1e-6)
    unit = torch.tensor([1.0, -1.0, 1.0, -1.0]).reshape(1, 4, 1, 1)
    assert unit_kl_loss(unit).item() == pytest.approx(0, abs=1e-6)  # its minimum: unit mean square
    # Where the official term is smallest (z -> 0) this one grows: it pulls the latent's scale up to 1.
    small = torch.full((1, 4, 1, 1), 0.1, requires_grad=True)
    unit_kl_loss(small).backward()
    assert unit_kl_loss(small).item() > unit_kl_loss(unit).item() and (small.grad < 0).all()
    net = randomize(IRN(2, block_num=[1]), seed=3)
    terms = {
        kind: IRNObjective(net, make_config("paper", scale=2, distr_loss=kind))(*_batch())
        for kind in ("sum_of_squares", "unit_kl")
    }
    y = net(_batch()[0])
    torch.testing.assert_close(terms["unit_kl"]["l_distr"], unit_kl_loss(y[:, 3:]))
    torch.testing.assert_close(terms["sum_of_squares"]["l_distr"], distribution_loss(y[:, 3:]))
    assert make_config("paper").distr_loss == make_config("quick").distr_loss == "sum_of_squares"
    with pytest.raises(SettingsError, match="distr_loss must be 'sum_of_squares' .the paper., 'unit_kl' or"):
        make_config("smoke", distr_loss="kl")


def test_unit_hinge_loss_is_the_squared_excess_of_abs_z_over_one_summed_per_image():
    z = torch.tensor([[[[1.5, -3.0]], [[0.5, 0.0]]], [[[-0.9, 1.0]], [[2.0, 0.0]]]])  # (2, 2, 1, 2)
    # image 0: 0.5² + 2² = 4.25 (0.5 and 0 are inside); image 1: 1² = 1; mean over the batch 2.625
    assert unit_hinge_loss(z).item() == pytest.approx(2.625)
    # Inside the draw's standard deviation it neither pulls z to 0 nor pushes it up: no gradient.
    inside = torch.tensor([0.0, 0.3, -0.7, 0.99]).reshape(1, 4, 1, 1).requires_grad_()
    unit_hinge_loss(inside).backward()
    assert unit_hinge_loss(inside).item() == 0 and (inside.grad == 0).all()
    outside = torch.tensor([4.0, -4.0]).reshape(1, 2, 1, 1)
    assert unit_hinge_loss(outside).item() == pytest.approx(18)  # 3² + 3², where Σ z² is 32
    net = randomize(IRN(2, block_num=[1]), seed=3)
    l_distr = IRNObjective(net, make_config("paper", scale=2, distr_loss="unit_hinge"))(*_batch())["l_distr"]
    torch.testing.assert_close(l_distr, unit_hinge_loss(net(_batch()[0])[:, 3:]))


def test_backward_loss_is_charbonnier_summed_per_image_averaged_over_batch():
    x_hat = torch.tensor([[[[0.3, 0.0, 1.0]]], [[[0.2, 0.2, 0.2]]]], dtype=torch.float64)
    x = torch.tensor([[[[0.0, 0.0, 0.5]]], [[[0.2, 0.6, 0.0]]]], dtype=torch.float64)
    eps = 1e-6
    image0 = math.sqrt(0.09 + eps) + math.sqrt(eps) + math.sqrt(0.25 + eps)
    image1 = math.sqrt(eps) + math.sqrt(0.16 + eps) + math.sqrt(0.04 + eps)
    assert backward_loss(x_hat, x).item() == pytest.approx((image0 + image1) / 2, rel=1e-12)


def _batch(scale=2, b=2, p=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hr = torch.rand(b, 3, p, p, generator=gen)
    lr_ref = torch.rand(b, 3, p // scale, p // scale, generator=gen)
    z_prime = torch.randn(b, 3 * scale * scale - 3, p // scale, p // scale, generator=gen)
    return hr, lr_ref, z_prime


def test_objective_is_the_official_composition():
    net = randomize(IRN(2, block_num=[2]), seed=1)
    config = make_config("paper", scale=2, gaussian_scale=0.7, lambda_back=2.0, lambda_distr=0.5)
    assert config.lambda_forw == 4.0  # λ1 = s²
    hr, lr_ref, z_prime = _batch()
    terms = IRNObjective(net, config)(hr, lr_ref, z_prime)

    # By hand, with plain tensor operations.
    y = net(hr)
    lr, z = y[:, :3], y[:, 3:]
    l_forw = 4.0 * ((lr - lr_ref) ** 2).flatten(1).sum(1).mean()
    l_distr = 0.5 * (z**2).flatten(1).sum(1).mean()
    lr_8bit = torch.round(torch.clamp(lr, 0, 1) * 255) / 255
    x_hat = net.inverse(torch.cat((lr_8bit, 0.7 * z_prime), 1))[:, :3]
    l_back = 2.0 * torch.sqrt((x_hat - hr) ** 2 + 1e-6).flatten(1).sum(1).mean()
    torch.testing.assert_close(terms["l_forw"], l_forw)
    torch.testing.assert_close(terms["l_distr"], l_distr)
    torch.testing.assert_close(terms["l_back"], l_back)


def test_stress_term_is_the_forward_terms_on_the_batch_moved_up_their_gradient():
    net = randomize(IRN(2, block_num=[2]), seed=1)
    hr, lr_ref, z_prime = _batch()
    paper = IRNObjective(net, make_config("paper", scale=2))(hr, lr_ref, z_prime)
    assert paper["l_stress"].item() == 0  # the paper has no such term
    config = make_config("paper", scale=2, lambda_distr=0.5, lambda_stress=3.0, stress_eps=0.01)
    terms = IRNObjective(net, config)(hr, lr_ref, z_prime)
    for name in ("l_forw", "l_back"):  # the paper's terms are unchanged by it
        torch.testing.assert_close(terms[name], paper[name])

    def forward_terms(x):  # by hand: 4 · Σ (lr − lr_ref)² + 0.5 · Σ z², per image, batch mean
        y = net(x)
        l_forw = 4.0 * ((y[:, :3] - lr_ref) ** 2).flatten(1).sum(1).mean()
        return l_forw + 0.5 * (y[:, 3:] ** 2).flatten(1).sum(1).mean()

    x = hr.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(forward_terms(x), x)
    moved = (hr + 0.01 * grad.sign()).clamp(0, 1)
    assert (moved - hr).abs().max().item() <= 0.01 + 1e-7 and not torch.equal(moved, hr)
    torch.testing.assert_close(terms["l_stress"], 3.0 * forward_terms(moved))
    # Moving up the gradient makes the forward terms larger than at the batch itself.
    assert forward_terms(moved).item() > forward_terms(hr).item()
    # It trains the weights (through the moved batch) and leaves the batch's own tensor alone.
    terms["l_stress"].backward()
    assert net.operations[1].H.conv5.weight.grad.abs().sum() > 0 and not hr.requires_grad
    for field, value in (("lambda_stress", -1.0), ("stress_eps", 0.0), ("stress_eps", 1.0), ("lambda_range", -1.0)):
        with pytest.raises(SettingsError, match=field):
            make_config("paper", scale=2, **{field: value})


def test_stress_start_random_steps_from_a_random_point_within_the_bound():
    net = randomize(IRN(2, block_num=[2]), seed=1)
    hr, lr_ref, z_prime = _batch()
    eps = 0.01
    objective = IRNObjective(
        net, make_config("paper", scale=2, lambda_stress=1.0, stress_eps=eps, stress_start="random")
    )
    _, terms = objective.forward_terms(hr, lr_ref, 1.0)
    torch.manual_seed(5)
    moved = objective.moved_batch(hr, lr_ref, 1.0, terms)
    # By hand: δ0 ~ U(−ε, ε) from the same generator, the gradient at the start, 1.25 ε up it.
    torch.manual_seed(5)
    start = (2 * torch.rand_like(hr) - 1) * eps
    x0 = (hr + start).clamp(0, 1).requires_grad_(True)
    _, start_terms = objective.forward_terms(x0, lr_ref, 1.0)
    (grad,) = torch.autograd.grad(sum(start_terms.values()), x0)
    torch.testing.assert_close(moved, (hr + (start + 1.25 * eps * grad.sign()).clamp(-eps, eps)).clamp(0, 1))
    assert (moved - hr).abs().max().item() <= eps + 1e-7
    # Not the step from the batch itself: a random point, and the step's size 1.25 ε then clipped
    # to the bound leaves some values strictly inside it.
    inside = ((moved - hr).abs() < eps - 1e-6) & (hr > eps) & (hr < 1 - eps)
    assert inside.any()
    # Two calls draw two starts; the terms stay finite and train the weights.
    assert not torch.equal(objective.moved_batch(hr, lr_ref, 1.0, terms), moved)
    total = sum(objective(hr, lr_ref, z_prime).values())
    total.backward()
    assert torch.isfinite(total) and net.operations[1].H.conv5.weight.grad.abs().sum() > 0
    with pytest.raises(SettingsError, match="stress_start"):
        make_config("paper", scale=2, stress_start="middle")


def test_quantization_in_the_objective_is_straight_through_not_detached():
    net = randomize(IRN(2, block_num=[1]), seed=2)
    config = make_config("paper", scale=2, lambda_forw=0.0, lambda_distr=0.0)  # only L_back
    hr, lr_ref, z_prime = _batch()
    IRNObjective(net, config)(hr, lr_ref, z_prime)["l_back"].backward()
    # L_back reaches the forward-only parameters through the quantized LR: conv weights of
    # the forward pass's F get gradients (they would not if the LR were detached).
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert grads["operations.1.F.conv5.weight"].abs().sum() > 0
    # And quantize's gradient is the identity.
    x = torch.tensor([-0.2, 0.3, 1.4], requires_grad=True)
    quantize(x).sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_switched_off_terms_are_zero_and_skip_the_inverse(monkeypatch):
    net = IRN(2, block_num=[1])
    calls = []
    monkeypatch.setattr(net, "inverse", lambda y: calls.append(y) or y)
    config = make_config("paper", scale=2, lambda_back=0.0, lambda_distr=0.0)
    terms = IRNObjective(net, config)(*_batch())
    assert terms["l_back"].item() == 0 and terms["l_distr"].item() == 0 and terms["l_forw"].item() > 0
    assert calls == []


@pytest.mark.parametrize("scale", [2, 4])
def test_memory_saving_and_channels_last_give_the_same_gradients(scale):
    def gradients(memory_saving=False, channels_last=False, dtype=torch.float32):
        torch.manual_seed(0)  # the same initial conv1-4 weights every time
        net = randomize(IRN(scale, block_num=[2] * (scale // 2)), seed=3).to(dtype)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(memory_format=fmt)
        config = make_config("paper", scale=scale, memory_saving=memory_saving, channels_last=channels_last)
        hr, lr_ref, z_prime = (t.to(dtype) for t in _batch(scale, p=16))
        terms = IRNObjective(net, config)(hr.contiguous(memory_format=fmt), lr_ref, z_prime)
        total = sum(terms.values())
        total.backward()
        return total.detach(), [p.grad for p in net.parameters()]

    plain_loss, plain = gradients()
    saving_loss, saving = gradients(memory_saving=True)
    assert torch.equal(plain_loss, saving_loss)
    for a, b in zip(plain, saving):
        assert torch.equal(a, b)  # recomputation repeats the same operations: bit-identical
    # channels_last runs other kernels (other rounding): as close to the float64 truth as the plain path.
    exact_loss, exact = gradients(dtype=torch.float64)
    fast_loss, fast = gradients(memory_saving=True, channels_last=True)
    torch.testing.assert_close(fast_loss.double(), exact_loss, rtol=1e-6, atol=0)
    for ours, truth, reference in zip(fast, exact, plain):
        error = (ours.double() - truth).norm() / truth.norm()
        plain_error = (reference.double() - truth).norm() / truth.norm()
        assert error < max(5 * plain_error, 1e-6), (error, plain_error)


@pytest.mark.parametrize("amp", [False, True])
def test_channels_last_objective_feeds_every_convolution_nhwc_and_under_autocast_bf16(amp):
    """With channels_last every dense-block convolution gets an NHWC input (none copies its
    input to NHWC first, in forward or backward), and under bf16 autocast the dense blocks
    concatenate in bf16 (no float32 concatenation cast again per layer)."""
    scale = 4
    net = randomize(IRN(scale, block_num=[1, 1]), seed=2).to(memory_format=torch.channels_last)
    config = make_config("paper", scale=scale, channels_last=True)
    seen = []
    for name, conv in net.named_modules():
        if isinstance(conv, torch.nn.Conv2d):
            conv.register_forward_pre_hook(lambda m, inputs, name=name: seen.append((name, inputs[0])))
    hr, lr_ref, z_prime = _batch(scale, p=16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        IRNObjective(net, config)(hr.contiguous(memory_format=torch.channels_last), lr_ref, z_prime)
    assert len(seen) == 2 * 2 * 3 * 5  # forward and inverse, 2 blocks, F/G/H, 5 convolutions
    # conv1 reads a channel slice of the block's NHWC input (channel stride 1); the others the
    # dense block's concatenations, which must be NHWC-contiguous
    assert all(x.stride(1) == 1 for _, x in seen)
    assert all(x.is_contiguous(memory_format=torch.channels_last) for name, x in seen if not name.endswith("conv1"))
    assert {x.dtype for name, x in seen if not name.endswith("conv1")} == {torch.bfloat16 if amp else torch.float32}


def test_run_network_memory_saving_is_forward_and_inverse():
    net = randomize(IRN(4, block_num=[1, 2]), seed=4)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(run_network(net, x, memory_saving=True), net(x), rtol=0, atol=0)
    y = net(x)
    torch.testing.assert_close(run_network(net, y, inverse=True, memory_saving=True), net.inverse(y), rtol=0, atol=0)


def test_one_step_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = IRN(2)  # a fresh network, as training starts
    config = make_config("paper", scale=2)
    objective = IRNObjective(net, config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    paths = list_images("embedded-train")
    samples = TrainingSamples(TrainingPatches(paths, 2, 32, seed=0), 2, seed=0)
    batch = [torch.stack(parts) for parts in zip(*(samples[k] for k in range(4)))]
    before = sum(objective(*batch).values())
    optimizer.zero_grad()
    before.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
    optimizer.step()
    with torch.no_grad():
        after = sum(objective(*batch).values())
    assert after.item() < 0.99 * before.item()


# ---------------------------------------------------------------- data stream


def test_samples_are_deterministic_in_their_index_and_latents_are_standard_normal():
    patches = TrainingPatches(list_images("embedded-train"), 4, 32, seed=5)
    a, b = TrainingSamples(patches, 4, seed=5), TrainingSamples(patches, 4, seed=5)
    for k in (0, 7):
        for u, v in zip(a[k], b[k]):
            assert torch.equal(u, v)
    hr, lr, z, back_weight, distr_weight = a[3]
    assert hr.shape == (3, 32, 32) and lr.shape == (3, 8, 8) and z.shape == (45, 8, 8)
    assert back_weight.shape == distr_weight.shape == () and back_weight.item() == distr_weight.item() == 1.0
    zs = torch.stack([a[k][2] for k in range(20)])
    assert abs(zs.mean().item()) < 0.05 and abs(zs.std().item() - 1) < 0.05
    assert not torch.equal(a[0][2], a[1][2])


def test_iteration_batches_split_the_global_batch_between_ranks():
    single = list(IterationBatches(3, 5, batch_size=4))
    assert single == [[12, 13, 14, 15], [16, 17, 18, 19]]
    rank0 = list(IterationBatches(3, 5, batch_size=4, rank=0, world=2))
    rank1 = list(IterationBatches(3, 5, batch_size=4, rank=1, world=2))
    assert [a + b for a, b in zip(rank0, rank1)] == single
    with pytest.raises(ValueError, match="not divisible"):
        IterationBatches(0, 1, batch_size=3, world=2)


# ---------------------------------------------------------------- configuration


def test_paper_profile_is_the_official_recipe():
    config = make_config("paper", scale=2)
    assert (config.iterations, config.batch_size, config.patch_size) == (500_000, 16, 144)
    assert (config.lr, config.betas, config.weight_decay) == (2e-4, (0.9, 0.999), 1e-5)
    assert config.lr_milestones == (100_000, 200_000, 300_000, 400_000) and config.lr_gamma == 0.5
    assert (config.lambda_forw, config.lambda_back, config.lambda_distr, config.grad_clip) == (4.0, 1.0, 1.0, 10.0)
    assert config.train_set == "DIV2K_train_HR" and config.augment
    assert make_config("paper", scale=8).lambda_forw == 64.0
    assert not (config.channels_last or config.memory_saving) and config.amp == "off"
    assert config.run_name == "paper_x2"


def test_learning_rate_schedule():
    paper = make_config("paper")
    steps = (0, 99_999, 100_000, 200_000, 300_000, 400_000, 499_999)
    assert [lr_factor(t, paper) for t in steps] == [1, 1, 0.5, 0.25, 0.125, 0.0625, 0.0625]
    warm = make_config("smoke", warmup_iterations=4, lr_milestones=(6,))
    assert [lr_factor(t, warm) for t in range(8)] == [0.25, 0.5, 0.75, 1, 1, 1, 0.5, 0.5]


def test_distr_curriculum_switches_l_distr_on_then_ramps_it_to_its_weight():
    assert {distr_factor(t, make_config("paper")) for t in (0, 1, 499_999)} == {1.0}  # the paper: none
    curriculum = make_config("quick", distr_off_iterations=3, distr_ramp_iterations=4)
    assert [distr_factor(t, curriculum) for t in range(9)] == [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    switched = make_config("quick", distr_off_iterations=2)
    assert [distr_factor(t, switched) for t in range(4)] == [0, 0, 1, 1]
    # The objective weighs L_distr by λ3 times the factor, and leaves the other terms alone.
    net = randomize(IRN(2, block_num=[1]), seed=3)
    objective = IRNObjective(net, make_config("paper", scale=2, lambda_distr=0.5))
    full, half, off = (objective(*_batch(), distr_factor=f) for f in (1.0, 0.5, 0.0))
    torch.testing.assert_close(half["l_distr"], full["l_distr"] / 2)
    assert off["l_distr"].item() == 0 and full["l_distr"].item() > 0
    torch.testing.assert_close(off["l_back"], full["l_back"])
    with pytest.raises(ValueError, match="distr_ramp_iterations must be >= 0"):
        make_config("quick", distr_ramp_iterations=-1)


def test_overrides_and_errors():
    config = make_config("smoke", iterations=7, lambda_forw=1.5, run_name="mine")
    assert (config.profile, config.iterations, config.lambda_forw, config.run_name, config.scale) == (
        "smoke",
        7,
        1.5,
        "mine",
        4,
    )
    assert make_config("smoke").run_dir.parts[-3:] == ("results", "runs", "smoke_x4")
    with pytest.raises(ValueError, match="unknown TrainConfig field.*'itertions'"):
        make_config("smoke", itertions=3)
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        make_config("fast")
    with pytest.raises(ValueError, match="patch_size 50 must be a multiple of scale 4"):
        make_config("smoke", patch_size=50)
    with pytest.raises(ValueError, match="amp must be"):
        make_config("smoke", amp="fp8")


def test_parse_overrides_types():
    parsed = parse_overrides(
        ["iterations=5e5", "lr=1e-3", "betas=0.8,0.99", "val_crop=none", "channels_last=true",
         "block_num=4,4", "lr_milestones=10,20", "device=cuda:1", "lambda_forw=2"]
    )  # fmt: skip
    assert parsed == dict(
        iterations=500_000, lr=1e-3, betas=(0.8, 0.99), val_crop=None, channels_last=True, block_num=[4, 4],
        lr_milestones=(10, 20), device="cuda:1", lambda_forw=2.0,
    )  # fmt: skip
    config = TrainConfig(**parsed)
    assert json.loads(json.dumps(dataclasses.asdict(config)))["betas"] == [0.8, 0.99]
    with pytest.raises(ValueError, match="not of the form"):
        parse_overrides(["iterations"])
    with pytest.raises(ValueError, match="'channels_last=maybe'"):
        parse_overrides(["channels_last=maybe"])


def test_cli_prints_the_resolved_config(capsys):
    main(["--profile", "smoke", "--print-config", "scale=2", "iterations=9"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["scale"] == 2 and printed["iterations"] == 9 and printed["lambda_forw"] == 4.0
    assert printed["run_name"] == "smoke_x2"
    with pytest.raises(SystemExit):
        main(["--profile", "smoke", "nonsense=1"])


def test_smoke_profile_is_small():
    config = make_config("smoke")
    assert config.scale == 4 and config.train_set == "embedded-train" and config.val_set == "embedded-test"
    assert config.iterations <= 500 and config.batch_size * config.patch_size**2 <= 4 * 64 * 64
    assert np.isclose(config.lambda_forw, 16.0)


# ---------------------------------------------------------------- bf16 autocast on CPU


def test_amp_auto_is_bf16_only_where_the_cpu_does_it_natively(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native, expected in (("amx", "bf16"), ("avx512_bf16", "bf16"), (None, "off")):
        monkeypatch.setattr(training_config, "native_bf16", lambda native=native: native)
        assert resolve_amp("auto", cpu) == expected
        assert resolve_amp("auto", cuda) == "off"  # a GPU's autocast stays a decision of its user
        assert resolve_amp("off", cpu) == "off" and resolve_amp("bf16", cpu) == "bf16"
    assert make_config("smoke").amp == "off"  # no profile turns it on behind the user's back
    with pytest.raises(ValueError, match="amp must be"):
        make_config("smoke", amp="bf17")


def test_amp_auto_is_resolved_and_recorded_by_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(training_config, "native_bf16", lambda: None)
    config = make_config("smoke", scale=2, block_num=[1], patch_size=16, batch_size=2, val_images=1, val_crop=32,
                         iterations=1, progress=False, runs_dir=str(tmp_path), run_name="auto", amp="auto")  # fmt: skip
    run_dir = tr.train(config)
    assert json.loads((run_dir / "config.json").read_text())["amp"] == "off"
    # On a CPU with native bf16 the same command would be another run: resuming there is refused.
    monkeypatch.setattr(training_config, "native_bf16", lambda: "amx")
    with pytest.raises(ValueError, match=r"amp: 'off' -> 'bf16'"):
        tr.train(dataclasses.replace(config, iterations=2))


def test_bf16_autocast_stays_within_its_accuracy_bound():
    """bf16 (8 bits of mantissa) against fp32 on one training step of a real photograph:
    L_back and L_distr within 3 %, L_forw within 10 %, the gradient within 5 % (relative L2)
    and pointing the same way. Measured on the full network and 64² crops (2026-11-25, AMD
    EPYC): terms 0.07-1.1 %, gradient 0.8 % (x2) and 1.9 % (x4); this small network's L_forw
    differs by 7 %."""
    img = torch.from_numpy(skimage.data.astronaut()[100:132, 100:132].copy()).permute(2, 0, 1)[None].float() / 255
    hr = torch.cat([img, img.flip(-1)])
    for scale in (2, 4):
        config = make_config("smoke", scale=scale)
        net = randomize(IRN(scale, block_num=[2] * (scale // 2)), seed=1)
        z = torch.randn(2, 3 * scale * scale - 3, 32 // scale, 32 // scale, generator=torch.Generator().manual_seed(2))
        results = {}
        for dtype in (torch.float32, torch.bfloat16):
            net.zero_grad()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is torch.bfloat16):
                terms = IRNObjective(net, config)(hr, imresize(hr, 1 / scale), z)
            sum(terms.values()).backward()
            grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
            results[dtype] = ({k: float(v.detach()) for k, v in terms.items()}, grads)
        (terms32, g32), (terms16, g16) = results[torch.float32], results[torch.bfloat16]
        # L_forw, the smallest term (the LR's squared error), feels bf16's rounding of the LR most
        for k, bound in (("l_forw", 0.1), ("l_back", 0.03), ("l_distr", 0.03)):
            assert terms16[k] == pytest.approx(terms32[k], rel=bound), (scale, k)
        assert float((g16 - g32).norm() / g32.norm()) < 0.05
        assert float(torch.nn.functional.cosine_similarity(g32, g16, dim=0)) > 0.99


def test_grid_term_is_the_squared_norm_of_the_errors_blockwise_period_s_pattern():
    scale, block = 4, 8
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    pattern = torch.randn(3, scale, scale, generator=torch.Generator().manual_seed(1))
    pattern -= pattern.mean(dim=(1, 2), keepdim=True)  # a period-4 pattern with no mean of its own
    # the same pattern everywhere: the term is its squared norm over the image
    assert grid_loss(x + pattern.repeat(1, 4, 4), x, scale, block).item() == pytest.approx(
        pattern.pow(2).sum().item() * 16, rel=1e-5
    )
    # an error without a period-4 part (a constant; one 4 × 4 cell's worth everywhere alike) is not counted
    assert grid_loss(x + 0.3, x, scale, block).item() == pytest.approx(0, abs=1e-9)
    # the pattern's sign may change from one 8 × 8 block to the next (each block counts on its own),
    # but where it changes from one 4 × 4 cell to the next inside a block it averages out
    signs = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    by_block = signs.repeat_interleave(8, 0).repeat_interleave(8, 1)  # (16, 16)
    by_cell = signs.repeat_interleave(4, 0).repeat_interleave(4, 1).repeat(2, 2)  # (16, 16)
    tiled = pattern.repeat(1, 4, 4)
    assert grid_loss(x + tiled * by_block, x, scale, block).item() == pytest.approx(
        pattern.pow(2).sum().item() * 16, rel=1e-5
    )
    assert grid_loss(x + tiled * by_cell, x, scale, block).item() == pytest.approx(0, abs=1e-6)
    # each image's sum times its weight, averaged over the batch
    err = x + torch.stack([pattern.repeat(1, 4, 4), 2 * pattern.repeat(1, 4, 4)])
    one, weighted = grid_loss(err, x, scale, block), grid_loss(err, x, scale, block, torch.tensor([1.0, 0.0]))
    assert weighted.item() == pytest.approx(one.item() / 5, rel=1e-5)  # (1 + 0 · 4) / (1 + 4)
    with pytest.raises(ValueError, match="block 6"):
        grid_loss(x, x, scale, 6)
    # in the objective: off in the paper, L_back's error (the same x̂) otherwise, the other terms unchanged
    net = randomize(IRN(2, block_num=[2]), seed=1)
    hr, lr_ref, z_prime = _batch(p=8)
    paper = IRNObjective(net, make_config("paper", scale=2))(hr, lr_ref, z_prime)
    assert paper["l_grid"].item() == 0
    terms = IRNObjective(net, make_config("paper", scale=2, patch_size=8, lambda_grid=10.0, grid_block=4))(
        hr, lr_ref, z_prime
    )
    for name in ("l_forw", "l_back", "l_distr"):
        torch.testing.assert_close(terms[name], paper[name])
    x_hat = net.inverse(torch.cat((quantize(net(hr)[:, :3]), z_prime), 1))[:, :3]
    assert terms["l_grid"].item() == pytest.approx(10.0 * grid_loss(x_hat, hr, 2, 4).item(), rel=1e-4)
    assert terms["l_grid"].item() > 0
    for overrides in ({"grid_block": 6}, {"lambda_grid": 1.0, "patch_size": 40, "grid_block": 16}):
        with pytest.raises(SettingsError, match="grid_block"):
            make_config("quick", scale=4, **overrides)


def test_range_term_is_the_lrs_squared_excess_outside_zero_one_and_trains_it_back_in():
    net = randomize(IRN(2, block_num=[2]), seed=1)
    hr, lr_ref, z_prime = _batch()
    hr = 3 * hr - 1  # values beyond [0, 1], so that the LR leaves it too
    paper = IRNObjective(net, make_config("paper", scale=2))(hr, lr_ref, z_prime)
    assert paper["l_range"].item() == 0  # the paper has no such term
    terms = IRNObjective(net, make_config("paper", scale=2, lambda_range=10.0))(hr, lr_ref, z_prime)
    for name in ("l_forw", "l_back", "l_distr"):  # the paper's terms are unchanged by it
        torch.testing.assert_close(terms[name], paper[name])
    lr = net(hr)[:, :3]
    by_hand = sum((max(v - 1, 0) ** 2 + max(-v, 0) ** 2) for v in lr.detach().flatten().tolist()) / hr.shape[0]
    assert by_hand > 0
    assert terms["l_range"].item() == pytest.approx(10.0 * by_hand, rel=1e-4)
    # inside [0, 1] it is 0; its gradient points the excess back in
    inside = torch.tensor([[[[0.0, 0.5, 1.0]]]])
    assert range_loss(inside).item() == 0
    out = torch.tensor([[[[-0.2, 0.5, 1.3]]]], requires_grad=True)
    range_loss(out).backward()
    torch.testing.assert_close(range_loss(out.detach()), torch.tensor(0.04 + 0.09))
    assert out.grad.flatten().tolist() == pytest.approx([-0.4, 0.0, 0.6])
