import pytest
import torch

from solvers.dgno.operators import DeepONet, MultiONet, make_operator


def _pair(depth=4, act="tanh_sin"):
    torch.manual_seed(0)
    deep = DeepONet(6, 2, width=16, depth=depth, activation=act, dtype=torch.float64)
    multi = MultiONet(6, 2, width=16, depth=depth, activation=act, sum_layers=1, weight_init=1.0,
                      dtype=torch.float64)
    missing = multi.load_state_dict(deep.state_dict(), strict=False)
    assert missing.missing_keys == ["layer_weights"] and not missing.unexpected_keys
    with torch.no_grad():
        deep.bias.fill_(0.3)
        multi.bias.fill_(0.3)
    return deep, multi


@pytest.mark.parametrize("act", ["tanh", "tanh_sin", "silu_id"])
def test_multionet_one_layer_unit_weight_is_deeponet(act):
    deep, multi = _pair(act=act)
    beta = torch.randn(3, 6, dtype=torch.float64)
    x = torch.rand(10, 2, dtype=torch.float64)
    xb = torch.rand(3, 7, 2, dtype=torch.float64)
    assert torch.equal(deep(beta, x), multi(beta, x))
    assert torch.equal(deep(beta, xb), multi(beta, xb))


def test_multionet_sums_weighted_layers():
    torch.manual_seed(1)
    net = MultiONet(4, 2, width=8, depth=3, sum_layers=2, weight_init=0.0, dtype=torch.float64)
    beta, x = torch.randn(2, 4, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64)
    with torch.no_grad():
        net.layer_weights.copy_(torch.tensor([0.7, -1.3], dtype=torch.float64))
    b, t = net.branch.hidden(beta), net.trunk.hidden(x)
    ref = (0.7 * b[1] @ t[1].T - 1.3 * b[2] @ t[2].T) / 2 + net.bias
    torch.testing.assert_close(net(beta, x), ref, rtol=0, atol=1e-14)
    # shared points and per-sample points agree
    torch.testing.assert_close(net(beta, x.expand(2, 5, 2)), net(beta, x))
    # learnable layer weights receive gradients
    net(beta, x).sum().backward()
    assert net.layer_weights.grad.abs().min() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="sum_layers"):
        MultiONet(3, 2, depth=2, sum_layers=3)
    with pytest.raises(ValueError, match="activation"):
        make_operator("deeponet", 3, 2, activation="nope")
    net = make_operator("deeponet", 3, 2, width=4, depth=2)
    with pytest.raises(ValueError, match="batch"):
        net(torch.randn(2, 3), torch.rand(3, 5, 2))


@pytest.mark.parametrize("act", ["tanh", "tanh_sin", "silu", "silu_id"])
@pytest.mark.parametrize("kind", ["deeponet", "multionet"])
def test_forward_and_grad_matches_autograd(kind, act):
    torch.manual_seed(2)
    net = make_operator(kind, 5, 2, width=12, depth=3, activation=act, sum_layers=2, weight_init=0.5,
                        dtype=torch.float64)
    beta = torch.randn(4, 5, dtype=torch.float64)
    x = torch.rand(9, 2, dtype=torch.float64)
    out, grad = net.forward_and_grad(beta, x)
    xb = x.expand(4, 9, 2).clone().requires_grad_(True)
    ref = net(beta, xb)
    (g,) = torch.autograd.grad(ref.sum(), xb)
    torch.testing.assert_close(out, ref.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, g, rtol=0, atol=1e-12)
    # and the gradient is differentiable in the parameters (used inside the DGNO loss)
    assert torch.autograd.gradcheck(lambda b: net.forward_and_grad(b, x)[1], (beta[:2].requires_grad_(True),))
