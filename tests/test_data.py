"""Tests of tinygrad_lite.data: TensorDataset and DataLoader."""

import numpy as np
import pytest

pytest.importorskip("tinygrad_lite.autograd.tensor")

from tinygrad_lite.autograd.tensor import Tensor  # noqa: E402
from tinygrad_lite.backend.random import manual_seed  # noqa: E402
from tinygrad_lite.data import DataLoader, TensorDataset  # noqa: E402


def _dataset(n=10):
    """Features whose first column is the sample number, and labels = sample number."""
    X = np.arange(n * 3, dtype=np.float64).reshape(n, 3) / 3.0
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(X, y)


def _epoch_labels(loader):
    """Labels of one epoch, batch by batch."""
    return [batch[1].numpy().tolist() for batch in loader]


# ---------------------------------------------------------------------------
# TensorDataset
# ---------------------------------------------------------------------------


def test_tensor_dataset_indexing():
    dataset = _dataset(4)
    assert len(dataset) == 4
    x, y = dataset[2]
    np.testing.assert_array_equal(x, [2.0, 7 / 3, 8 / 3])
    assert y == 2
    xs, ys = dataset[np.array([3, 0])]
    assert xs.shape == (2, 3) and ys.tolist() == [3, 0]


def test_tensor_dataset_accepts_tensors_and_lists():
    dataset = TensorDataset(Tensor(np.ones((3, 2), dtype=np.float32)), [0, 1, 2])
    x, y = dataset[1]
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    assert y == 1


def test_tensor_dataset_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_needs_arrays_with_a_sample_axis():
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="first"):
        TensorDataset(np.float64(3.0))


# ---------------------------------------------------------------------------
# DataLoader: batches
# ---------------------------------------------------------------------------


def test_batches_are_tensors_with_kept_dtypes():
    X32 = np.ones((5, 2), dtype=np.float32)
    loader = DataLoader(TensorDataset(np.ones((5, 2)), X32, np.arange(5)), batch_size=2)
    x64, x32, y = next(iter(loader))
    assert all(isinstance(t, Tensor) for t in (x64, x32, y))
    assert x64.dtype == np.float64 and x32.dtype == np.float32 and y.dtype == np.int64
    assert x64.shape == (2, 2) and y.shape == (2,)


def test_unshuffled_order_and_last_batch():
    loader = DataLoader(_dataset(10), batch_size=4)
    assert len(loader) == 3
    assert _epoch_labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    first_x = next(iter(loader))[0].numpy()
    np.testing.assert_array_equal(first_x, _dataset(10).arrays[0][:4])


def test_drop_last():
    loader = DataLoader(_dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert _epoch_labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(_dataset(8), batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(_dataset(3), batch_size=4, drop_last=True)) == 0
    assert list(DataLoader(_dataset(3), batch_size=4, drop_last=True)) == []


def test_len_matches_number_of_batches():
    for n in (1, 7, 8, 9):
        for batch_size in (1, 3, 8, 20):
            for drop_last in (False, True):
                loader = DataLoader(_dataset(n), batch_size, shuffle=True, drop_last=drop_last)
                assert len(list(loader)) == len(loader)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_dataset(), batch_size=batch_size)


# ---------------------------------------------------------------------------
# DataLoader: shuffling
# ---------------------------------------------------------------------------


def test_shuffle_covers_every_sample_once_per_epoch():
    manual_seed(0)
    loader = DataLoader(_dataset(23), batch_size=5, shuffle=True)
    for _ in range(3):
        seen = [label for batch in _epoch_labels(loader) for label in batch]
        assert sorted(seen) == list(range(23))
        assert seen != list(range(23))


def test_shuffled_rows_stay_paired():
    manual_seed(1)
    for x, y in DataLoader(_dataset(12), batch_size=5, shuffle=True):
        np.testing.assert_array_equal(x.numpy()[:, 0], y.numpy())


def test_shuffle_with_drop_last_drops_only_the_remainder():
    manual_seed(2)
    loader = DataLoader(_dataset(10), batch_size=3, shuffle=True, drop_last=True)
    seen = [label for batch in _epoch_labels(loader) for label in batch]
    assert len(seen) == 9 and len(set(seen)) == 9


def test_shuffle_reproducible_under_manual_seed_and_new_each_epoch():
    loader = DataLoader(_dataset(30), batch_size=7, shuffle=True)
    manual_seed(42)
    first_run = [_epoch_labels(loader) for _ in range(2)]
    manual_seed(42)
    second_run = [_epoch_labels(loader) for _ in range(2)]
    assert first_run == second_run
    assert first_run[0] != first_run[1]


# ---------------------------------------------------------------------------
# DataLoader: generic datasets
# ---------------------------------------------------------------------------


class SquaresDataset:
    """A dataset without arrays: sample i is (Tensor [i, i*i], label i % 2)."""

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return Tensor(np.array([index, index * index], dtype=np.float64)), index % 2


def test_generic_dataset_is_collated():
    batches = list(DataLoader(SquaresDataset(), batch_size=2))
    assert len(batches) == 3
    x, y = batches[1]
    np.testing.assert_array_equal(x.numpy(), [[2.0, 4.0], [3.0, 9.0]])
    assert x.dtype == np.float64
    assert y.numpy().tolist() == [0, 1] and y.dtype == np.int64


def test_single_field_dataset_gives_one_tuple():
    class Numbers:
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return np.float64(index)

    (x,) = next(iter(DataLoader(Numbers(), batch_size=3)))
    assert x.numpy().tolist() == [0.0, 1.0, 2.0]


def test_subclass_getitem_is_respected():
    class Doubled(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return 2 * x, y

    (x, y), = list(DataLoader(Doubled(np.ones((3, 1)), np.arange(3)), batch_size=3))
    np.testing.assert_array_equal(x.numpy(), 2 * np.ones((3, 1)))
