"""The Tensor container: dtype rules, factories, identity hashing, error messages."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor

# ---------------------------------------------------------------- dtype rules


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_numpy_arrays_keep_their_dtype(dtype):
    t = Tensor(np.ones((2, 2), dtype=dtype))
    assert t.dtype == dtype
    assert (t * 2.0 + 1).dtype == dtype
    assert (t.exp().sum() / 3).dtype == dtype


def test_python_numbers_and_lists():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor([[1, 2], [3, 4]]).dtype == np.int64
    assert Tensor(3).dtype == np.int64
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor(np.float64(1.5)).dtype == np.float64


def test_numpy_bool_and_int_arrays():
    mask = Tensor(np.array([True, False]))
    assert mask.dtype == np.bool_ and not mask.requires_grad
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert Tensor(np.arange(3)).dtype == np.int64
    assert Tensor(np.array([1, 2]), dtype="float32").dtype == np.float32


def test_tensor_copies_its_numpy_input():
    a = np.zeros(3)
    t = Tensor(a)
    a[0] = 5.0
    assert t.numpy()[0] == 0.0
    t.numpy()[1] = 7.0   # .numpy() is a copy too
    assert t.numpy()[1] == 0.0


def test_mixed_float32_float64_gives_float64():
    a = Tensor(np.ones(2, np.float32))
    b = Tensor(np.ones(2, np.float64))
    assert (a + b).dtype == np.float64
    assert (a @ b).dtype == np.float64
    assert tl.cat([a.reshape(1, 2), b.reshape(1, 2)]).dtype == np.float64


def test_int_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only floating-point tensors can require grad"):
        Tensor([1, 2], requires_grad=True)
    t = Tensor([1, 2])
    with pytest.raises(RuntimeError, match="float dtype"):
        t.requires_grad = True


def test_conversions():
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert t.double().dtype == np.float64 and t.float() is t
    assert t.astype("float64").requires_grad
    d = t.detach()
    assert not d.requires_grad and d.is_leaf
    assert Tensor(2.5).item() == 2.5
    assert Tensor(np.array([[1.0]])).item() == 1.0
    with pytest.raises(ValueError, match="one element"):
        Tensor([1.0, 2.0]).item()
    assert Tensor(t).shape == (2,) and not Tensor(t).requires_grad
    assert len(Tensor(np.zeros((4, 2)))) == 4
    assert Tensor(np.zeros((4, 2))).T.shape == (2, 4)


def test_cast_gradient_has_the_input_dtype():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    (x.astype("float64") * 2).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


# ----------------------------------------------------------------- factories


@pytest.mark.parametrize("factory", [tl.zeros, tl.ones, tl.randn, tl.rand])
def test_shape_as_ints_or_tuple(factory):
    assert factory(2, 3).shape == factory((2, 3)).shape == (2, 3)
    assert factory([4]).shape == (4,)
    t = factory(2, dtype="float64", requires_grad=True, device="cpu")
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf and t.device == "cpu"
    assert factory(2).dtype == np.float32


def test_other_factories():
    assert tl.full((2, 2), 1.5).dtype == np.float32
    assert tl.full((2,), 3).dtype == np.int64
    assert tl.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert tl.arange(0, 1, 0.25, dtype="float64").numpy().tolist() == [0, 0.25, 0.5, 0.75]
    np.testing.assert_array_equal(tl.eye(3).numpy(), np.eye(3))
    x = tl.randn(2, 3, dtype="float64")
    assert tl.zeros_like(x).dtype == np.float64 and tl.ones_like(x).shape == (2, 3)
    assert tl.ones_like(x, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="negative dimension"):
        tl.zeros(2, -1)


def test_manual_seed_reproducibility():
    tl.manual_seed(123)
    first = (tl.randn(3, 2).numpy(), tl.rand(4).numpy())
    tl.manual_seed(123)
    second = (tl.randn(3, 2).numpy(), tl.rand(4).numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    tl.manual_seed(124)
    assert not np.array_equal(tl.randn(3, 2).numpy(), first[0])


# ---------------------------------------------------- identity and comparison


def test_tensors_hash_by_identity():
    a, b = Tensor([1.0]), Tensor([1.0])
    assert len({a, b}) == 2
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"
    assert a in {a} and b not in {a}


def test_equality_is_elementwise_and_truth_is_ambiguous():
    eq = Tensor([1.0, 2.0]) == Tensor([1.0, 3.0])
    assert eq.numpy().tolist() == [True, False]
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(eq)
    assert bool(Tensor([1.0]) == 1.0)


# --------------------------------------------------- errors, nothing changed


def test_shape_mismatch_errors_name_the_op_and_both_shapes():
    a, b = tl.zeros(2, 3), tl.zeros(4, 5)
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(4, 5\)"):
        a * b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"matmul: batch dimensions of \(2, 3, 4\) and "):
        tl.zeros(2, 3, 4) @ tl.zeros(3, 4, 2)
    with pytest.raises(ValueError, match=r"reshape: .*shape \(2, 3\).*into shape \(4, 2\)"):
        a.reshape(4, 2)
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\) and \(4, 5\)"):
        tl.cat([a, b])
    with pytest.raises(ValueError, match=r"stack"):
        tl.stack([a, b])
    with pytest.raises(ValueError, match=r"where"):
        tl.where(tl.zeros(3) > 0, a, b)
    with pytest.raises(ValueError, match=r"expand: cannot broadcast shape \(2, 3\) to"):
        a.expand(4, 3)


def test_index_out_of_range_raises_index_error():
    t = Tensor(np.zeros((3, 2)), requires_grad=True)
    for index in (5, (0, 2), [0, 3], -4):
        with pytest.raises(IndexError, match=r"shape \(3, 2\)"):
            t[index]
    with pytest.raises(IndexError):
        t[Tensor([7])]


def test_axis_errors():
    with pytest.raises(ValueError, match="sum: axis 2 is out of range"):
        tl.zeros(2, 3).sum(2)
    with pytest.raises(ValueError, match="repeated axis"):
        tl.zeros(2, 3).sum((0, -2))
    with pytest.raises(TypeError, match="axis must be an int"):
        tl.zeros(2, 3).sum(1.5)


def test_a_failed_op_leaves_inputs_and_grads_unchanged():
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones((4,)), requires_grad=True)
    (a * 2).sum().backward()
    before = a.grad.numpy(), a.numpy()
    for bad in (lambda: a + b, lambda: a @ b, lambda: a.reshape(5), lambda: a[9],
                lambda: tl.cat([a, b])):
        with pytest.raises((ValueError, IndexError)):
            bad()
    np.testing.assert_array_equal(a.grad.numpy(), before[0])
    np.testing.assert_array_equal(a.numpy(), before[1])
    assert b.grad is None and a.is_leaf


def test_a_failed_in_place_update_changes_nothing():
    w = Tensor(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        w.add_(Tensor(np.ones((2, 3))))
    np.testing.assert_array_equal(w.numpy(), np.ones(3))
    assert w._version == 0


def test_integer_tensors_with_floats_give_float32():
    ints = Tensor([1, 2])
    assert (ints * 1.5).dtype == np.float32
    assert (2.5 / ints).dtype == np.float32
    assert (ints / 2).dtype == np.float32          # true division of ints
    assert (ints ** 0.5).dtype == np.float32
    assert (ints + Tensor(np.ones(2, np.float32))).dtype == np.float32
    assert (ints + Tensor(np.ones(2))).dtype == np.float64   # a float64 tensor wins
    assert (Tensor([True, False]) * 1.5).dtype == np.float32
    assert (ints * 2).dtype == np.int64
    np.testing.assert_allclose((ints / 2).numpy(), [0.5, 1.0])
