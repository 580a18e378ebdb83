"""The CUDA backend against the numpy backend (the reference), primitive by primitive,
then through Tensors: forward values and gradients computed on "cuda" equal the CPU's.

Runs on a GPU or in the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``); shapes are
tiny because the simulator runs every CUDA thread as a Python thread.
"""

import os

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

import tinygrad_lite as tl  # noqa: E402
import tinygrad_lite.nn.functional as F  # noqa: E402
from tinygrad_lite import Tensor  # noqa: E402
from tinygrad_lite.backend import get_backend  # noqa: E402
from tinygrad_lite.backend.numpy_backend import NumpyBackend  # noqa: E402

pytestmark = pytest.mark.cuda

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}

NB = NumpyBackend()


@pytest.fixture(scope="module")
def cb():
    return get_backend("cuda")


def _rand(shape, dtype, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def _to_cuda(cb, value):
    """numpy arrays (also inside tuples/lists) to device arrays; everything else as is."""
    if isinstance(value, np.ndarray):
        return cb.from_host(value)
    if isinstance(value, tuple):
        return tuple(_to_cuda(cb, v) for v in value)
    if isinstance(value, list):
        return [_to_cuda(cb, v) for v in value]
    return value


def _check_same(ours, expected, cb):
    """A device result equals the numpy one: shape, dtype and values."""
    if isinstance(expected, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(expected)
        for o, e in zip(ours, expected):
            _check_same(o, e, cb)
        return
    expected = np.asarray(expected)
    got = cb.to_host(ours)
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    if expected.dtype.kind == "f":
        tol = TOL.get(expected.dtype, 1e-5)
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, expected)


def _same(cb, name, *args, **kwargs):
    """Run primitive ``name`` on both backends with the same (host) arguments; compare."""
    expected = getattr(NB, name)(*args, **kwargs)
    ours = getattr(cb, name)(*_to_cuda(cb, args), **kwargs)
    _check_same(ours, expected, cb)
    return ours


# ------------------------------------------------------------- the interface


def test_backend_identity(cb):
    assert cb.name == "cuda" and cb.device == "cuda"
    assert get_backend("cuda") is cb
    assert get_backend("cuda:0") is cb


def test_every_numpy_primitive_exists_on_cuda(cb):
    """The CUDA backend implements the whole interface the ops layer may call (the
    optional in-place primitives have fallbacks)."""
    names = {n for n in dir(NumpyBackend) if not n.startswith("_")}
    names -= NumpyBackend.OPTIONAL_PRIMITIVES
    missing = sorted(n for n in names if not hasattr(cb, n))
    assert not missing, f"CudaBackend lacks {missing}"


def test_dtype_helpers(cb):
    assert cb.dtype("float32") == np.float32
    assert cb.is_floating(np.dtype(np.float64)) and not cb.is_floating(np.dtype(np.int64))
    assert cb.result_dtype(np.float32, np.float64) == np.float64
    assert cb.default_float == np.float32
    assert cb.broadcast_shapes((2, 1), (3,)) == (2, 3)


# ------------------------------------------------------- creation, transfer


@pytest.mark.parametrize("data", [[1.0, 2.0], [[1, 2], [3, 4]], 3.5, True,
                                  np.arange(3, dtype=np.float64)])
def test_asarray_follows_the_dtype_rules(cb, data):
    _check_same(cb.asarray(data), NB.asarray(data), cb)
    _check_same(cb.asarray(data, np.float64), NB.asarray(data, np.float64), cb)


def test_transfer_round_trip_and_copies(cb):
    host = _rand((2, 3), np.float32)
    device = cb.from_host(host)
    back = cb.to_host(device)
    np.testing.assert_array_equal(back, host)
    back[0, 0] = 99.0  # to_host is a copy
    assert cb.item(cb.getitem(device, (0, 0))) == host[0, 0]
    copied = cb.copy(device)
    cb.setitem(copied, Ellipsis, 0.0)  # copy is independent
    np.testing.assert_array_equal(cb.to_host(device), host)
    scalar = cb.from_host(np.asarray(2.5))
    assert cb.to_host(scalar).shape == () and cb.item(scalar) == 2.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_zeros_full(cb, dtype):
    _same(cb, "zeros", (2, 3), dtype)
    _same(cb, "full", (3,), 1, dtype)
    _same(cb, "full", (), 1, dtype)


def test_arange_eye(cb):
    _same(cb, "arange", 0, 5, 1, np.int64)
    _same(cb, "arange", 1.0, 2.0, 0.25, np.float32)
    _same(cb, "eye", 3, 2, np.float64)


@pytest.mark.parametrize("name", ["randn", "rand"])
def test_random_draws_match_the_cpu_under_a_seed(cb, name):
    tl.manual_seed(7)
    expected = getattr(NB, name)((2, 3), np.float32)
    tl.manual_seed(7)
    _check_same(getattr(cb, name)((2, 3), np.float32), expected, cb)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator computes inf - inf
@pytest.mark.parametrize("dtype", DTYPES)
def test_isfinite_all_finite_item(cb, dtype):
    x = np.array([[1.0, np.inf], [np.nan, -2.0]], dtype=dtype)
    _same(cb, "isfinite", x)
    assert cb.all_finite(cb.from_host(x)) is False
    assert cb.all_finite(cb.from_host(x[:, [1]][1:] * 0 + 1)) is True
    assert cb.all_finite(cb.from_host(np.array([1, 2]))) is True
    item = cb.item(cb.from_host(np.array([1.5], dtype=dtype)))
    assert item == 1.5 and isinstance(item, float)


# --------------------------------------------------------------- elementwise

UNARY = ["neg", "exp", "log", "sqrt", "abs", "sign", "sin", "cos", "tanh", "sigmoid", "relu",
         "log1p", "expm1"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_unary(cb, name, dtype):
    low = 0.1 if name in ("log", "sqrt") else -3.0
    x = _rand((2, 3), dtype, low=low, high=3.0)
    x.flat[0] = 0.5 if name in ("log", "sqrt") else 0.0
    _same(cb, name, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BINARY)
def test_binary_with_broadcasting_and_scalars(cb, name, dtype):
    a = _rand((2, 3), dtype, seed=1)
    b = _rand((3,), dtype, seed=2)
    b[0] = a[0, 0]  # a tie, for the comparisons and maximum / minimum
    _same(cb, name, a, b)
    _same(cb, name, b, a)
    _same(cb, name, a, 1.5)
    _same(cb, name, 1.5, a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow(cb, dtype):
    a = _rand((2, 3), dtype, low=0.5, high=2.0)
    _same(cb, "pow", a, 2)
    _same(cb, "pow", a, 0.5)
    _same(cb, "pow", 2.0, a)
    _same(cb, "pow", a, _rand((3,), dtype, seed=3))


def test_dtype_promotion_matches_numpy(cb):
    f32, f64 = _rand((2, 2), np.float32), _rand((2, 2), np.float64, seed=1)
    ints = np.arange(4, dtype=np.int64).reshape(2, 2)
    for a, b in [(f32, f64), (f32, 2.0), (2.0, f32), (f32, 3), (ints, 0.5), (ints, 2),
                 (ints, f32)]:
        _same(cb, "add", a, b)
        _same(cb, "mul", a, b)
        _same(cb, "div", a, b)
    _same(cb, "exp", ints)
    _same(cb, "neg", ints)
    _same(cb, "sub", 1.0, 2.0)  # two scalars still give an array on the device


@pytest.mark.parametrize("dtype", DTYPES)
def test_where(cb, dtype):
    cond = np.array([[True, False, True], [False, False, True]])
    a, b = _rand((2, 3), dtype), _rand((1, 3), dtype, seed=1)
    _same(cb, "where", cond, a, b)
    _same(cb, "where", cond, a, 0.0)
    _same(cb, "where", cond, 1.0, 0.25)
    _same(cb, "where", a > 0, a, b)


# ---------------------------------------------------------------- reductions


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sum", "max", "min"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True),
                                           ((0, 2), False), ((), False)])
def test_reductions(cb, name, dtype, axis, keepdims):
    x = _rand((2, 3, 2), dtype)
    _same(cb, name, x, axis=axis, keepdims=keepdims)


def test_sum_of_bools_and_ints(cb):
    _same(cb, "sum", np.array([[True, False], [True, True]]), axis=0)
    _same(cb, "sum", np.arange(6, dtype=np.int64).reshape(2, 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_arg_reductions(cb, name, dtype, axis):
    x = _rand((3, 4), dtype)
    x[1, 2] = x[0, 2]  # a tie goes to the first
    _same(cb, name, x, axis=axis)


# ------------------------------------------------------------------ movement


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_transpose_broadcast(cb, dtype):
    x = _rand((2, 3, 2), dtype)
    _same(cb, "reshape", x, (3, -1))
    _same(cb, "reshape", x, (12,))
    _same(cb, "transpose", x, (2, 0, 1))
    _same(cb, "broadcast_to", x[:, :1], (4, 2, 3, 2))
    # a view (transpose, broadcast) feeds every other primitive
    d = cb.from_host(x)
    t = cb.transpose(d, (1, 0, 2))
    expected = np.transpose(x, (1, 0, 2))
    _check_same(cb.reshape(t, (3, 4)), expected.reshape(3, 4), cb)
    _check_same(cb.exp(t), np.exp(expected), cb)
    _check_same(cb.sum(t, axis=0), expected.sum(axis=0), cb)
    _check_same(cb.copy(t), expected, cb)
    _check_same(cb.getitem(t, (1, slice(None, None, -1))), expected[1, ::-1], cb)
    _check_same(cb.astype(t, np.float64), expected.astype(np.float64), cb)
    _check_same(cb.contiguous(t), expected, cb)
    b = cb.broadcast_to(cb.from_host(x[0, 0]), (3, 2))
    _check_same(cb.mul(b, 2.0), np.broadcast_to(x[0, 0], (3, 2)) * 2, cb)


KEYS = [
    (1,),
    (1, 2),
    (slice(None), 0),
    (slice(None, None, -1), slice(1, None, 2)),
    (None, Ellipsis, 1),
    (np.array([0, 0, 1]),),
    (slice(None), np.array([[2, 0], [1, 1]])),
    (np.array([[True, False, True], [False, True, True]]),),
    (np.array(1), np.array(2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
def test_getitem_and_index_add(cb, key, dtype):
    x = _rand((2, 3), dtype)
    selected = _same(cb, "getitem", x, key)
    values = _rand(np.shape(x[key]), dtype, seed=5)
    expected = NB.index_add(x.shape, key, values, dtype)
    ours = cb.index_add(x.shape, _to_cuda(cb, key), cb.from_host(values), dtype)
    _check_same(ours, expected, cb)  # repeated integer indices add up
    assert tuple(selected.shape) == x[key].shape


def test_index_with_device_index_arrays(cb):
    """Tensor indices reach the backend as device arrays."""
    x = _rand((3, 2), np.float32)
    idx = np.array([2, 0, 2])
    _check_same(cb.getitem(cb.from_host(x), cb.from_host(idx)), x[idx], cb)
    mask = x > 0
    _check_same(cb.getitem(cb.from_host(x), cb.from_host(mask)), x[mask], cb)


@pytest.mark.parametrize("key", [Ellipsis, (0,), (slice(None), 1), (np.array([1, 0]),),
                                 (slice(None), np.array([2, 0])),
                                 (np.array([[True, False, True], [False, True, True]]),)],
                         ids=range(6))
def test_setitem(cb, key):
    x = _rand((2, 3), np.float32)
    values = np.float32(7.0) if key is Ellipsis else _rand(np.shape(x[key]), np.float64)
    expected = x.copy()
    NB.setitem(expected, key, values)
    ours = cb.from_host(x)
    cb.setitem(ours, _to_cuda(cb, key), _to_cuda(cb, values))
    _check_same(ours, expected, cb)
    cb.setitem(ours, key, 1.0)  # a Python scalar
    expected[key] = 1.0
    _check_same(ours, expected, cb)
    # writing through a transposed view changes the underlying array, as in numpy
    base = cb.from_host(x.T.copy())
    view = cb.transpose(base, (1, 0))
    cb.setitem(view, _to_cuda(cb, key), _to_cuda(cb, values))
    expected = x.copy()
    NB.setitem(expected, key, values)
    _check_same(base, expected.T, cb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_concatenate_astype(cb, dtype):
    x = _rand((2, 3), dtype)
    _same(cb, "pad", x, ((1, 0), (0, 2)), 0.5)
    _same(cb, "concatenate", [x, x[:1]], 0)
    _same(cb, "concatenate", [x, _rand((2, 1), np.float64)], 1)
    for target in (np.float32, np.float64, np.int64, np.bool_):
        _same(cb, "astype", x, target)
    _same(cb, "contiguous", x)


# ------------------------------------------------------------ linear algebra


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((2, 3), (3, 4)), ((3,), (3,)), ((3,), (3, 2)),
                                    ((2, 3), (3,)), ((2, 2, 3), (3, 2)),
                                    ((2, 1, 2, 3), (3, 3, 2))], ids=str)
def test_matmul(cb, dtype, shapes):
    a, b = _rand(shapes[0], dtype, seed=1), _rand(shapes[1], dtype, seed=2)
    _same(cb, "matmul", a, b)


def test_matmul_views_mixed_dtypes_and_ints(cb):
    a, w = _rand((2, 3), np.float32), _rand((4, 3), np.float32, seed=1)
    _check_same(cb.matmul(cb.from_host(a), cb.transpose(cb.from_host(w), (1, 0))), a @ w.T, cb)
    _same(cb, "matmul", a, _rand((3, 2), np.float64))
    _same(cb, "matmul", np.arange(6).reshape(2, 3), np.arange(3))


# ------------------------------------------------------- convolution, pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv2d_and_backwards(cb, dtype, stride, padding):
    x, w = _rand((2, 2, 4, 4), dtype), _rand((3, 2, 3, 3), dtype, seed=1)
    out = NB.conv2d(x, w, stride, padding)
    _same(cb, "conv2d", x, w, stride, padding)
    g = _rand(out.shape, dtype, seed=2)
    _same(cb, "conv2d_backward_input", g, w, x.shape, stride, padding)
    _same(cb, "conv2d_backward_weight", g, x, w.shape, stride, padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 1)])
def test_pooling_and_backwards(cb, dtype, kernel, stride):
    x = _rand((1, 2, 4, 4), dtype)
    out, indices = _same(cb, "max_pool2d", x, kernel, stride)
    g = _rand(out.shape, dtype, seed=3)
    expected = NB.max_pool2d_backward(g, NB.max_pool2d(x, kernel, stride)[1], x.shape)
    _check_same(cb.max_pool2d_backward(cb.from_host(g), indices, x.shape), expected, cb)
    _check_same(cb.max_pool2d_backward(cb.from_host(g), indices, x.shape, kernel, stride),
                expected, cb)
    _same(cb, "avg_pool2d", x, kernel, stride)
    _same(cb, "avg_pool2d_backward", g, x.shape, kernel, stride)


# ------------------------------------------------------- Tensors on the GPU


def test_tensor_on_cuda_basics():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    assert x.device == "cuda" and x.dtype == np.float32 and x.shape == (2, 2)
    assert "device='cuda'" in repr(x)
    back = x.to("cpu")
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), [[1, 2], [3, 4]])
    assert x.to("cuda") is x
    assert (x.sum()).item() == 10.0
    for factory in (tl.zeros, tl.ones, tl.randn, tl.rand):
        t = factory(2, 3, device="cuda")
        assert t.device == "cuda" and t.shape == (2, 3) and t.dtype == np.float32
    assert tl.arange(0, 4, device="cuda").device == "cuda"
    assert tl.eye(3, device="cuda").numpy().trace() == 3


def test_seeded_random_tensors_match_the_cpu():
    tl.manual_seed(3)
    cpu = tl.randn(2, 3)
    tl.manual_seed(3)
    gpu = tl.randn(2, 3, device="cuda")
    np.testing.assert_array_equal(cpu.numpy(), gpu.numpy())


def test_mixing_devices_names_both():
    a = Tensor([1.0, 2.0])
    b = Tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        a + b
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        b * a


def test_gradient_flows_back_across_to():
    x = Tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    y = (x.to("cuda") * 3.0).relu().sum()
    y.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [[3.0, 0.0, 3.0]])


def test_inplace_updates_on_cuda():
    x = Tensor(np.ones((2, 2), np.float32), device="cuda")
    x.add_(1.0).mul_(Tensor([[1.0, 2.0]], device="cuda"))
    x[0, 1] = 5.0
    x[Tensor([1], device="cuda")] = Tensor([[7.0, 8.0]], device="cuda")
    np.testing.assert_array_equal(x.numpy(), [[2.0, 5.0], [7.0, 8.0]])
    x.zero_()
    assert x.numpy().sum() == 0


def _tensor_case(name):
    """(function of two float tensors x (2, 3) and w (3, 3) giving a scalar)."""
    cases = {
        "arith": lambda x, w: ((x * 2.0 - w[:2] / 3.0 + 1) ** 2).sum(),
        "matmul_act": lambda x, w: (x @ w.T).tanh().sigmoid().mean(),
        "unary": lambda x, w: (x.exp().log() + x.abs().sqrt() + x.sin() * x.cos()).sum(),
        "softmax": lambda x, w: (x.softmax(-1) * w[:2]).sum() + x.log_softmax(0).mean(),
        "reduce": lambda x, w: x.max(axis=1).sum() + x.min() + x.var(axis=0).sum()
        + x.std() + x.logsumexp(axis=1).sum(),
        "shape": lambda x, w: (x.T.reshape(-1)[::2] * 1.5).sum()
        + tl.cat([x, w[:1]], 0).sum(axis=0)[1] + tl.stack([x, x * 2], 1)[:, 1].sum()
        + x.pad(((1, 0), (0, 1)), value=2.0).mean() + x.unsqueeze(0).expand(2, 2, 3).sum(),
        "index": lambda x, w: x[[0, 1, 1], [2, 0, 0]].sum() + x[x > 0].sum()
        + x[:, None, 1].sum(),
        "piecewise": lambda x, w: (x.relu() + x.leaky_relu(0.1) + x.elu() + x.clip(-0.5, 0.5)
                                   + x.maximum(w[:2]) + tl.where(x > w[1:], x, w[1:])).sum(),
        "conv_pool": lambda x, w: (
            F.conv2d(x.reshape(1, 1, 2, 3), w.reshape(1, 1, 3, 3), padding=1).tanh().sum()
            + (F.max_pool2d(x.reshape(1, 1, 2, 3) * w[0], 2, 1) ** 2).sum()
            + F.avg_pool2d(x.reshape(1, 1, 2, 3), 2, 1).exp().sum()),
    }
    return cases[name]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["arith", "matmul_act", "unary", "softmax", "reduce",
                                  "shape", "index", "piecewise", "conv_pool"])
def test_tensor_ops_forward_and_backward_match_the_cpu(name, dtype):
    if name == "conv_pool" and not all(hasattr(F, n) for n in ("conv2d", "max_pool2d",
                                                              "avg_pool2d")):
        pytest.skip("nn.functional has no conv2d / max_pool2d / avg_pool2d yet")
    fn = _tensor_case(name)
    x_host = _rand((2, 3), dtype, seed=11)
    w_host = _rand((3, 3), dtype, seed=12)
    results = {}
    for device in ("cpu", "cuda"):
        x = Tensor(x_host, requires_grad=True, device=device)
        w = Tensor(w_host, requires_grad=True, device=device)
        out = fn(x, w)
        assert out.device == device and out.dtype == dtype
        out.backward()
        assert x.grad.device == device and x.grad.dtype == dtype
        results[device] = (out.numpy(), x.grad.numpy(),
                           None if w.grad is None else w.grad.numpy())
    tol = TOL[np.dtype(dtype)] * 10
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        assert (cpu is None) == (gpu is None)
        if cpu is not None:
                np.testing.assert_allclose(gpu, cpu, rtol=tol, atol=tol)


def test_comparisons_and_argmax_on_cuda():
    x = Tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]], device="cuda")
    assert (x > 1.5).dtype == np.bool_ and (x > 1.5).device == "cuda"
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), [1, 2])
    np.testing.assert_array_equal((x == x).numpy(), np.ones((2, 3), bool))


def test_anomaly_detection_on_cuda():
    x = Tensor([1.0, -1.0], requires_grad=True, device="cuda")
    with tl.detect_anomaly(), pytest.raises(RuntimeError):
        x.log().sum()


@pytest.mark.parametrize("name", ["matmul_act", "conv_pool"])
def test_gradients_of_gradients_match_the_cpu(name):
    """create_graph=True on the GPU: a Hessian-vector product equals the CPU's."""
    if name == "conv_pool" and not hasattr(F, "conv2d"):
        pytest.skip("nn.functional has no conv2d yet")
    fn = _tensor_case(name)
    x_host, w_host = _rand((2, 3), np.float64, seed=13), _rand((3, 3), np.float64, seed=14)
    results = {}
    for device in ("cpu", "cuda"):
        x = Tensor(x_host, requires_grad=True, device=device)
        w = Tensor(w_host, requires_grad=True, device=device)
        (gx,) = tl.grad(fn(x, w), (x,), create_graph=True)
        (gx * gx).sum().backward()
        results[device] = (x.grad.numpy(), w.grad.numpy())
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
                    reason="the simulator has no memory managers")
def test_caching_allocator_reuses_blocks_on_a_real_gpu():
    """Dropped device arrays go back to the cache and serve the next request of their size."""
    import gc

    from numba import cuda

    import tinygrad_lite.kernels.cuda as K

    assert type(cuda.current_context().memory_manager).__name__ == "CachingMemoryManager"
    data = np.arange(1000, dtype=np.float32)
    first = cuda.to_device(data)
    del first
    gc.collect()
    before = K.memory_stats()
    second = cuda.to_device(data[::-1].copy())  # same size: must come from the cache
    after = K.memory_stats()
    assert after["reused"] == before["reused"] + 1
    assert after["cuda_allocs"] == before["cuda_allocs"]
    assert np.array_equal(second.copy_to_host(), data[::-1])  # the reused block holds new data
    assert tl.cuda.empty_cache() >= 0
