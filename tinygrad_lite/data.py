"""Datasets and mini-batch loading, modelled on ``torch.utils.data``.

A *dataset* is anything with ``__len__`` and ``__getitem__(i)`` that returns one sample
(a tuple of fields, e.g. ``(x, y)``). :class:`TensorDataset` wraps arrays that share their
first dimension. A :class:`DataLoader` walks a dataset in mini-batches and hands out each
batch as a tuple of Tensors::

    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
    for epoch in range(10):
        for xb, yb in loader:
            ...

Shuffling draws a fresh permutation from the library's generator at the start of every
epoch, so ``tl.manual_seed(n)`` makes the whole sequence of batches reproducible.
"""

import numpy as np

from tinygrad_lite.autograd.tensor import Tensor
from tinygrad_lite.backend import get_backend
from tinygrad_lite.backend.random import get_rng


def _as_numpy(value):
    """A numpy view of an array, a Tensor (anything with ``.numpy()``) or a Python value."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy") and not isinstance(value, np.generic):
        return np.asarray(value.numpy())
    return np.asarray(value)


class TensorDataset:
    """Samples made of the rows of several arrays: sample ``i`` is ``(a[i], b[i], ...)``.

    Args:
        *arrays: numpy arrays, Tensors or nested lists, all with the same first dimension
            (the number of samples). Tensors are copied to host numpy arrays once, here.

    Indexing returns a tuple of numpy values (one row of each array); an integer array or a
    slice as index returns a tuple of row blocks. The :class:`DataLoader` turns batches into
    Tensors.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_as_numpy(array) for array in arrays)
        shapes = [array.shape for array in self.arrays]
        if any(len(shape) == 0 for shape in shapes):
            raise ValueError(f"TensorDataset: every array needs a first (sample) axis, "
                             f"got shapes {shapes}")
        if len({shape[0] for shape in shapes}) != 1:
            raise ValueError(f"TensorDataset: all arrays must have the same first dimension "
                             f"(number of samples), got shapes {shapes}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(array[index] for array in self.arrays)

    def __repr__(self):
        shapes = ", ".join(str(array.shape) for array in self.arrays)
        return f"TensorDataset({shapes})"


class DataLoader:
    """Iterate over a dataset in mini-batches of Tensors.

    Args:
        dataset: a :class:`TensorDataset` or any object with ``__len__`` and
            ``__getitem__(i)`` returning a sample (a tuple of fields, or a single field).
        batch_size: samples per batch (a positive int). The last batch may be smaller.
        shuffle: if True, visit the samples in a new random order each epoch, drawn from the
            library's generator (reproducible under ``tl.manual_seed``).
        drop_last: if True, skip the last batch when it is smaller than ``batch_size``.

    Every batch is a tuple with one Tensor per field, even when there is a single field
    (``for (x,) in loader``). Dtypes are kept: float64 data stays float64, int64 labels stay
    int64. ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False):
        is_int = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
        if not is_int or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)

    def __len__(self):
        n_samples = len(self.dataset)
        if self.drop_last:
            return n_samples // self.batch_size
        return -(-n_samples // self.batch_size)  # ceiling division in integers

    def __iter__(self):
        """One epoch: yield ``len(self)`` batches, each a tuple of Tensors."""
        n_samples = len(self.dataset)
        if self.shuffle:
            order = get_rng().permutation(n_samples)
        else:
            order = np.arange(n_samples)
        plain = _is_plain_tensor_dataset(self.dataset)
        # Batches of numeric arrays are wrapped without a copy (see _gather). Checked once
        # an epoch: a gathered batch has the dtype of its array.
        wrappable = plain and all(array.dtype.kind in "biufc" for array in self.dataset.arrays)
        backend = get_backend("cpu")
        for batch_number in range(len(self)):
            start = batch_number * self.batch_size
            indices = order[start:start + self.batch_size]
            if wrappable:
                yield self._gather(indices, backend)
            elif plain:  # a dtype a Tensor cannot hold: Tensor() gives its error
                yield tuple([Tensor(array.take(indices, axis=0))
                             for array in self.dataset.arrays])
            else:
                yield self._collate(indices)

    def _gather(self, indices, backend):
        """A batch of a plain TensorDataset of numeric arrays: one ``take`` of the rows per
        array.

        ``take`` gathers the rows into a new C-contiguous array in one numpy call (a
        fancy index ``array[indices]`` does the same work with more dispatch). A Tensor
        made with ``Tensor(array)`` would copy it (a Tensor must not share memory with
        the user's array), but the new array belongs to nobody else: it is wrapped as
        it is.
        """
        return tuple([Tensor._make(backend.from_host(array.take(indices, axis=0)), backend)
                      for array in self.dataset.arrays])

    def _collate(self, indices):
        """A batch of any other dataset: one ``__getitem__`` per sample, then stacked."""
        fields = _collate([self.dataset[int(i)] for i in indices])
        return tuple(Tensor(field) for field in fields)

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")


def _is_plain_tensor_dataset(dataset):
    """True for a TensorDataset whose ``__getitem__`` was not overridden by a subclass."""
    return (isinstance(dataset, TensorDataset)
            and type(dataset).__getitem__ is TensorDataset.__getitem__)


def _collate(samples):
    """Stack a list of samples into one numpy array per field (the generic, slower path)."""
    if not isinstance(samples[0], (tuple, list)):
        samples = [(sample,) for sample in samples]
    n_fields = len(samples[0])
    if any(len(sample) != n_fields for sample in samples):
        raise ValueError("DataLoader: every sample of a dataset must have the same number "
                         "of fields")
    return tuple(np.stack([_as_numpy(sample[field]) for sample in samples])
                 for field in range(n_fields))
