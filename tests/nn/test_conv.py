"""Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d: gradients (first and second order), PyTorch
equivalence of values and gradients, layer shapes and error messages."""

import math

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn
from tinygrad_lite.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(7)


def _t(shape, requires_grad=True, rng=RNG):
    return Tensor(rng.standard_normal(shape), requires_grad=requires_grad)


# ------------------------------------------------------------------ gradients, float64

CONV_CASES = [  # (x shape, w shape, stride, padding)
    ((1, 2, 5, 5), (3, 2, 3, 3), 1, 0),
    ((1, 2, 5, 5), (3, 2, 3, 3), 1, 1),
    ((1, 2, 5, 7), (2, 2, 3, 3), 2, 0),
    ((1, 2, 6, 5), (2, 2, 3, 2), 2, 1),
    ((2, 1, 5, 4), (2, 1, 2, 3), (2, 1), (1, 0)),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
def test_conv2d_gradcheck(x_shape, w_shape, stride, padding):
    x, w, b = _t(x_shape), _t(w_shape), _t(w_shape[0])
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), (x, w, b))


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES[1:4])
def test_conv2d_gradgradcheck(x_shape, w_shape, stride, padding):
    """Second derivatives: the backward (ConvBackwardInput/Weight) is differentiable."""
    x, w, b = _t(x_shape), _t(w_shape), _t(w_shape[0])
    assert gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), (x, w, b))


def test_conv2d_third_order_through_backward_functions():
    """The adjoint functions' backwards are differentiable too (grad of a grad of a grad)."""
    x, w = _t((1, 1, 4, 4)), _t((1, 1, 2, 2))

    def second(x, w):
        (gx,) = tl.grad(F.conv2d(x, w).sum() ** 2, (x,), create_graph=True)
        return gx

    assert gradgradcheck(second, (x, w))


POOL_CASES = [  # (x shape, kernel, stride)
    ((1, 2, 4, 4), 2, None),
    ((1, 1, 5, 7), 3, 2),
    ((2, 1, 5, 5), 2, 1),          # overlapping windows
    ((1, 2, 6, 5), (2, 3), (1, 2)),
]


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("x_shape, kernel, stride", POOL_CASES)
def test_pool_gradcheck_and_gradgradcheck(pool, x_shape, kernel, stride):
    x = _t(x_shape)
    assert gradcheck(lambda x: pool(x, kernel, stride), (x,))
    assert gradgradcheck(lambda x: pool(x, kernel, stride), (x,))


def test_max_pool_overlapping_windows_sum_gradients():
    x = Tensor(np.array([[[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]),
               requires_grad=True)
    F.max_pool2d(x, 2, 1).sum().backward()  # the 1 is the maximum of both top windows
    assert x.grad.numpy()[0, 0, 0, 1] == 2.0


def test_small_cnn_gradcheck():
    conv_w, conv_b = _t((3, 1, 3, 3)), _t(3)
    lin_w = _t((4, 3 * 3 * 3))

    def net(x, conv_w, conv_b, lin_w):
        h = F.conv2d(x, conv_w, conv_b, padding=1).tanh()
        h = F.max_pool2d(h, 2, 2)
        return F.linear(h.flatten(1), lin_w).sum()

    assert gradcheck(net, (_t((2, 1, 6, 7)), conv_w, conv_b, lin_w))


# ------------------------------------------------------------------------- PyTorch

TORCH_CONV = [((2, 3, 9, 8), (4, 3, 3, 3), 1, 0), ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1),
              ((2, 3, 9, 8), (4, 3, 3, 2), 2, 1), ((1, 2, 7, 7), (5, 2, 5, 5), 3, 2)]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", TORCH_CONV)
def test_conv2d_matches_torch_values_and_gradients(x_shape, w_shape, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x_np, w_np = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b_np = rng.standard_normal(w_shape[0])
    x, w, b = Tensor(x_np, requires_grad=True), Tensor(w_np, requires_grad=True), \
        Tensor(b_np, requires_grad=True)
    out = F.conv2d(x, w, b, stride, padding)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    tout = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(Tensor(g))
    tout.backward(torch.tensor(g))
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_conv2d_second_derivative_matches_torch():
    """A gradient penalty ||dL/dx||^2 differentiated with respect to the weight."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x_np, w_np = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    x, w = Tensor(x_np, requires_grad=True), Tensor(w_np, requires_grad=True)
    (gx,) = tl.grad((F.conv2d(x, w, stride=2, padding=1).tanh()).sum(), (x,),
                    create_graph=True)
    (gx * gx).sum().backward()
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    (tgx,) = torch.autograd.grad(
        torch.nn.functional.conv2d(tx, tw, stride=2, padding=1).tanh().sum(), (tx,),
        create_graph=True)
    (tgx * tgx).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), (2, 1), ((3, 2), (1, 2))])
def test_pools_match_torch(kernel, stride):
    torch = pytest.importorskip("torch")
    x_np = np.random.default_rng(2).standard_normal((2, 3, 7, 8))
    for ours_fn, theirs_fn in ((F.max_pool2d, torch.nn.functional.max_pool2d),
                               (F.avg_pool2d, torch.nn.functional.avg_pool2d)):
        x, tx = Tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
        out, tout = ours_fn(x, kernel, stride), theirs_fn(tx, kernel, stride)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
        g = np.random.default_rng(3).standard_normal(out.shape)
        out.backward(Tensor(g))
        tout.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_conv2d_layer_loads_torch_state_dict():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)
    ours = nn.Conv2d(3, 6, 3, stride=2, padding=1)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 3, 11, 10)).astype(np.float32)
    out = ours(Tensor(x))
    assert out.dtype == np.float32 and out.shape == (2, 6, 6, 5)
    np.testing.assert_allclose(out.numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_digits_cnn_matches_torch_forward_and_gradients():
    torch = pytest.importorskip("torch")
    tl.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(1, 10, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(160, 50), nn.ReLU(), nn.Linear(50, 10))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 10, 3, padding="same"), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(160, 50), torch.nn.ReLU(),
                                 torch.nn.Linear(50, 10))
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(5)
    x, y = rng.random((16, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
    loss = F.cross_entropy(ours(Tensor(x)), Tensor(y))
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    tloss.backward()
    assert abs(loss.item() - tloss.item()) < 1e-5
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_matches_torch_train_and_eval(momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    ours, theirs = nn.BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum)
    w, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    ours.load_state_dict({"weight": w, "bias": b}, strict=False)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w))
        theirs.bias.copy_(torch.tensor(b))
    for step in range(3):
        x = (rng.standard_normal((4, 3, 5, 6)) * (step + 1) + step).astype(np.float32)
        xt = Tensor(x, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        out, tout = ours(xt), theirs(tx)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-4, atol=1e-5)
        g = rng.standard_normal(x.shape).astype(np.float32)
        out.backward(Tensor(g))
        tout.backward(torch.tensor(g))
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=key)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ layers and errors


def test_conv2d_layer_shapes_parameters_and_default_init():
    tl.manual_seed(0)
    layer = nn.Conv2d(4, 8, (3, 5), stride=(2, 1), padding=(1, 2))
    assert layer.weight.shape == (8, 4, 3, 5) and layer.bias.shape == (8,)
    assert layer.weight.dtype == np.float32
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    bound = 1 / math.sqrt(4 * 3 * 5)  # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), +)
    weight = layer.weight.numpy()
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound  # 480 draws
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert layer(tl.randn(2, 4, 9, 10)).shape == (2, 8, 5, 10)
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None
    assert nn.Conv2d(1, 2, 3, bias=False).num_parameters() == 18


def test_same_and_valid_padding():
    x = tl.randn(1, 2, 7, 6)
    assert nn.Conv2d(2, 3, 5, padding="same")(x).shape == (1, 3, 7, 6)
    assert nn.Conv2d(2, 3, (3, 1), padding="same")(x).shape == (1, 3, 7, 6)
    assert F.conv2d(x, tl.randn(3, 2, 3, 3), padding="valid").shape == (1, 3, 5, 4)
    with pytest.raises(ValueError, match="odd kernel"):
        nn.Conv2d(2, 3, 2, padding="same")
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same' or 'valid'"):
        nn.Conv2d(2, 3, 3, padding="full")


def test_pool_layers_shapes():
    x = tl.randn(2, 3, 9, 8)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(3, stride=2)(x).shape == (2, 3, 4, 3)
    assert nn.MaxPool2d((3, 2), stride=1)(x).shape == (2, 3, 7, 7)
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"


def test_conv2d_channel_mismatch_names_op_and_shapes():
    x, w = tl.randn(2, 3, 8, 8), tl.randn(4, 2, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d.*\(2, 3, 8, 8\).*\(4, 2, 3, 3\)"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"Conv2d.*\(2, 3, 8, 8\)"):
        nn.Conv2d(2, 4, 3)(x)


def test_kernel_larger_than_padded_input_raises():
    with pytest.raises(ValueError, match=r"conv2d: a 5x5 window does not fit"):
        F.conv2d(tl.randn(1, 1, 3, 3), tl.randn(1, 1, 5, 5))
    assert F.conv2d(tl.randn(1, 1, 3, 3), tl.randn(1, 1, 5, 5), padding=1).shape == \
        (1, 1, 1, 1)
    with pytest.raises(ValueError, match="max_pool2d: a 3x3 window does not fit"):
        F.max_pool2d(tl.randn(1, 1, 2, 5), 3)
    with pytest.raises(ValueError, match="avg_pool2d"):
        nn.AvgPool2d(4)(tl.randn(1, 1, 3, 3))


def test_bad_ranks_and_arguments():
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input.*unsqueeze"):
        F.conv2d(tl.randn(3, 8, 8), tl.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="weight must be a 4-D"):
        F.conv2d(tl.randn(1, 3, 8, 8), tl.randn(2, 3, 3))
    with pytest.raises(ValueError, match="bias of shape"):
        F.conv2d(tl.randn(1, 3, 8, 8), tl.randn(2, 3, 3, 3), tl.randn(3))
    with pytest.raises(ValueError, match="max_pool2d: expected a 4-D"):
        F.max_pool2d(tl.randn(8, 8), 2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.conv2d(tl.randn(1, 1, 4, 4), tl.randn(1, 1, 2, 2), stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        F.conv2d(tl.randn(1, 1, 4, 4), tl.randn(1, 1, 2, 2), padding=-1)
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        nn.MaxPool2d(2.5)
    with pytest.raises(TypeError, match="out_channels must be an int"):
        nn.Conv2d(1, 2.0, 3)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input"):
        nn.BatchNorm2d(3)(tl.randn(4, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected 3 channels"):
        nn.BatchNorm2d(3)(tl.randn(4, 2, 5, 5))


def test_float32_stays_float32_and_mixed_promotes():
    x32, w32 = tl.randn(1, 2, 5, 5), tl.randn(3, 2, 3, 3)
    assert F.conv2d(x32, w32).dtype == np.float32
    assert F.max_pool2d(x32, 2).dtype == np.float32
    assert F.avg_pool2d(x32, 2).dtype == np.float32
    x64 = Tensor(np.random.default_rng(0).standard_normal((1, 2, 5, 5)), requires_grad=True)
    w32.requires_grad = True
    out = F.conv2d(x64, w32)
    assert out.dtype == np.float64
    out.sum().backward()
    assert w32.grad.dtype == np.float32 and x64.grad.dtype == np.float64


def test_pool_integer_input_raises():
    with pytest.raises(TypeError, match="float"):
        F.max_pool2d(Tensor(np.ones((1, 1, 4, 4), dtype=np.int64)), 2)
