"""The IRN network: layout, invertibility, Haar transform, coupling arithmetic, log-dets."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import randomize

from irnlib import IRN, quantize
from irnlib.model.network import DenseSubnet, HaarDownsampling, InvBlock


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_inverse_undoes_forward_at_random_weights(scale, dtype, tol):
    net = randomize(IRN(scale), seed=scale).to(dtype)
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = net(x)
    assert y.shape == (2, 3 * scale**2, 32 // scale, 40 // scale)
    assert (net.inverse(y) - x).abs().max().item() < tol
    # The random weights make the LR differ clearly from the plain Haar low-pass image.
    assert (y[:, :3] - F.avg_pool2d(x, scale)).abs().max().item() > 0.05


def test_fresh_network_is_the_pure_haar_transform():
    x = torch.rand(1, 3, 16, 16)
    y = IRN(4)(x)
    torch.testing.assert_close(y[:, :3], F.avg_pool2d(x, 4))


def test_haar_channel_order_and_filters():
    c = 2
    haar = HaarDownsampling(c)
    assert haar.haar_weights.shape == (4 * c, 1, 2, 2)
    x = torch.arange(c * 16, dtype=torch.float64).reshape(1, c, 4, 4).sin()
    y = haar.double()(x)
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]  # top-left, top-right of each 2×2 block
    cc, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]  # bottom-left, bottom-right
    expected = [(a + b + cc + d) / 4, (a - b + cc - d) / 4, (a + b - cc - d) / 4, (a - b - cc + d) / 4]
    for k in range(4):
        for ch in range(c):
            torch.testing.assert_close(y[:, k * c + ch], expected[k][:, ch])


def test_haar_is_orthogonal_up_to_its_factor():
    haar = HaarDownsampling(3).double()
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    y = haar(x)
    # Each 2×2 block goes through W/4 with W^T W = 4 I: norms halve, and inverse = 4·W^T/4.
    torch.testing.assert_close(y.norm(), x.norm() / 2)
    torch.testing.assert_close(haar.inverse(y), x)
    v = torch.randn_like(y)
    adjoint = F.conv_transpose2d(
        v.reshape(2, 4, 3, 4, 3).transpose(1, 2).reshape(2, 12, 4, 3), haar.haar_weights, stride=2, groups=3
    )
    torch.testing.assert_close((y * v).sum(), (x * adjoint).sum() / 4)


def test_haar_is_not_trained_and_follows_dtype():
    net = IRN(2)
    assert all("haar" not in name for name, _ in net.named_parameters())
    assert net.double().operations[0].haar_weights.dtype == torch.float64


def test_invblock_matches_hand_computation():
    torch.manual_seed(0)
    block = randomize(InvBlock(12, 3)).double()
    x = torch.randn(2, 12, 5, 5, dtype=torch.float64)
    x1, x2 = x[:, :3], x[:, 3:]
    y1 = x1 + block.F(x2)
    s = 2 * torch.sigmoid(block.H(y1)) - 1
    y2 = x2 * torch.exp(s) + block.G(y1)
    torch.testing.assert_close(block(x), torch.cat((y1, y2), 1))
    torch.testing.assert_close(block.log_det(x), s.flatten(1).sum(1))
    torch.testing.assert_close(block.inverse(block(x)), x)


def test_dense_subnet_layout_and_init():
    net = DenseSubnet(9, 3, growth=32)
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    assert shapes["conv1.weight"] == (32, 9, 3, 3)
    assert shapes["conv2.weight"] == (32, 41, 3, 3)
    assert shapes["conv3.weight"] == (32, 73, 3, 3)
    assert shapes["conv4.weight"] == (32, 105, 3, 3)
    assert shapes["conv5.weight"] == (3, 137, 3, 3)
    assert net.conv5.weight.abs().sum() == 0 and net.conv5.bias.abs().sum() == 0
    for conv in (net.conv1, net.conv2, net.conv3, net.conv4):
        assert conv.bias.abs().sum() == 0
        fan_in, fan_out = conv.weight[0].numel(), conv.weight.shape[0] * 9
        xavier_std = math.sqrt(2 / (fan_in + fan_out))
        assert 0.07 * xavier_std < conv.weight.std().item() < 0.13 * xavier_std


def test_dense_subnet_concatenates_in_order():
    torch.manual_seed(1)
    net = randomize(DenseSubnet(3, 9, growth=4)).double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    x1 = act(net.conv1(x))
    x2 = act(net.conv2(torch.cat([x, x1], 1)))
    x3 = act(net.conv3(torch.cat([x, x1, x2], 1)))
    x4 = act(net.conv4(torch.cat([x, x1, x2, x3], 1)))
    torch.testing.assert_close(net(x), net.conv5(torch.cat([x, x1, x2, x3, x4], 1)))


@pytest.mark.parametrize("scale,blocks", [(2, [8]), (4, [8, 8]), (8, [8, 8, 8])])
def test_state_dict_layout(scale, blocks):
    net = IRN(scale)
    assert net.block_num == blocks
    state = net.state_dict()
    expected, index, width = {}, 0, 3
    for n in blocks:
        expected[f"operations.{index}.haar_weights"] = (4 * width, 1, 2, 2)
        width *= 4
        index += 1
        for _ in range(n):
            for sub, cin, cout in (("F", width - 3, 3), ("G", 3, width - 3), ("H", 3, width - 3)):
                for j in range(1, 6):
                    conv_in = cin + 32 * (j - 1)
                    conv_out = cout if j == 5 else 32
                    expected[f"operations.{index}.{sub}.conv{j}.weight"] = (conv_out, conv_in, 3, 3)
                    expected[f"operations.{index}.{sub}.conv{j}.bias"] = (conv_out,)
            index += 1
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


@pytest.mark.parametrize("scale,paper_millions", [(2, 1.66), (4, 4.35)])
def test_parameter_counts_match_the_paper(scale, paper_millions):
    count = sum(p.numel() for p in IRN(scale).parameters())  # 1,667,952 and 4,355,136
    assert math.floor(count / 1e4) / 100 == paper_millions  # the paper truncates to 3 digits


def test_custom_block_counts_and_bad_arguments():
    assert len(IRN(4, block_num=[2, 3]).operations) == 2 + 2 + 3
    with pytest.raises(ValueError, match="scale"):
        IRN(3)
    with pytest.raises(ValueError, match="block"):
        IRN(4, block_num=[8])


def test_log_det_matches_brute_force_jacobian():
    torch.manual_seed(0)
    net = randomize(IRN(2, block_num=[2]), seed=3).double()
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: net(t).flatten(), x).reshape(48, 48)
    _, logabsdet = torch.linalg.slogdet(jac)
    torch.testing.assert_close(net.log_det(x), logabsdet.reshape(1))
    haar = HaarDownsampling(3).double()
    jac_haar = torch.autograd.functional.jacobian(lambda t: haar(t).flatten(), x).reshape(48, 48)
    torch.testing.assert_close(haar.log_det(x), torch.linalg.slogdet(jac_haar)[1].reshape(1))
    assert haar.log_det(x).item() == pytest.approx(48 / 4 * math.log(1 / 16))


def test_log_det_per_sample_for_two_levels():
    net = randomize(IRN(4, block_num=[1, 1]), seed=4).double()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    for b in range(2):
        xb = x[b : b + 1]
        jac = torch.autograd.functional.jacobian(lambda t: net(t).flatten(), xb).reshape(48, 48)
        torch.testing.assert_close(net.log_det(x)[b], torch.linalg.slogdet(jac)[1])


def test_quantize_rounds_to_8_bits_with_straight_through_gradient():
    x = torch.tensor([-0.3, 0.0, 0.5 / 255, 1.4 / 255, 0.5, 1.2], requires_grad=True)
    q = quantize(x)
    expected = torch.tensor([0.0, 0.0, 0.0, 1 / 255, 128 / 255, 1.0])  # 0.5/255 rounds half to even
    torch.testing.assert_close(q, expected)
    (q * torch.arange(6.0)).sum().backward()
    torch.testing.assert_close(x.grad, torch.arange(6.0))  # passes through, even where clamped


def test_downscale_pads_odd_sizes_and_upscale_crops_back():
    net = randomize(IRN(4), seed=5)
    hr = torch.rand(1, 3, 30, 41)
    lr = net.downscale(hr)
    assert lr.shape == (1, 3, 8, 11)
    assert torch.equal(lr, quantize(lr))  # already on the 8-bit grid
    assert net.upscale(lr).shape == (1, 3, 32, 44)
    assert net.upscale(lr, size=(30, 41)).shape == (1, 3, 30, 41)


def test_upscale_draws_z_with_the_given_temperature_and_generator():
    net = randomize(IRN(2), seed=6).double()
    hr = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    lr = net.downscale(hr)
    a = net.upscale(lr, generator=torch.Generator().manual_seed(7))
    b = net.upscale(lr, generator=torch.Generator().manual_seed(7))
    c = net.upscale(lr, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    z = 0.5 * torch.randn(1, 9, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected = net.inverse(torch.cat((lr, z), 1))[:, :3]
    torch.testing.assert_close(net.upscale(lr, 0.5, torch.Generator().manual_seed(7)), expected)
    cold = net.upscale(lr, temperature=0.0)
    torch.testing.assert_close(cold, net.inverse(torch.cat((lr, torch.zeros_like(z)), 1))[:, :3])


def test_learned_downsampling_ablation_is_invertible_and_not_haar():
    net = randomize(IRN(4, downsampling="learned"), seed=9).double()
    assert "operations.0.weight" in net.state_dict() and "operations.0.haar_weights" not in net.state_dict()
    level = net.operations[0]
    assert level.weight.requires_grad
    torch.testing.assert_close(level.weight @ level.weight.T, torch.eye(12, dtype=torch.float64), atol=1e-6, rtol=0)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(net.inverse(net(x)), x)
    assert (net(x)[:, :3] - F.avg_pool2d(x, 4)).abs().max() > 0.05  # the LR starts far from low-pass
    jac = torch.autograd.functional.jacobian(lambda t: level(t).flatten(), x[:1, :, :4, :4]).reshape(48, 48)
    torch.testing.assert_close(level.log_det(x[:1, :, :4, :4]), torch.linalg.slogdet(jac)[1].reshape(1))
    with pytest.raises(ValueError, match="downsampling"):
        IRN(2, downsampling="wavelet")
