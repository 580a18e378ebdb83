"""Small data sets used in the lecture notes, returned as plain numpy arrays.

Every loader here gives numpy arrays, not Tensors: data preparation (splitting,
scaling, windowing) is ordinary numpy work, and ``tl.data.DataLoader`` or
``Tensor(array)`` turns the result into Tensors when training starts.

- :func:`load_digits` and :func:`load_breast_cancer` come with scikit-learn (no download).
- :func:`pairing_energies` is a 20-point series embedded in this file.
- :func:`noisy_sine` draws its noise from the library's generator, so
  ``tl.manual_seed(n)`` makes it reproducible.
- :func:`sequence_windows` cuts a series into (window, next value) pairs for recurrent nets.
- :func:`load_cifar10` reads the official CIFAR-10 binary files from a local folder.
"""

import os

import numpy as np

from tinygrad_lite.backend.random import get_rng

# ---------------------------------------------------------------------------
# scikit-learn data sets
# ---------------------------------------------------------------------------


def load_digits(images=False):
    """The 8x8 handwritten digits of scikit-learn, pixels scaled to [0, 1].

    The raw pixels are integers 0..16; we divide by 16 so every feature lies in [0, 1].

    Args:
        images: if False (default) each image is flattened to 64 features, as in the notes'
            MLP example; if True X keeps the image layout ``(n, 1, 8, 8)`` (NCHW, one
            channel) ready for ``nn.Conv2d``.

    Returns:
        ``(X, y)``: X float64 of shape ``(1797, 64)`` or ``(1797, 1, 8, 8)``, y int64 labels
        0..9 of shape ``(1797,)``.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    digits = sklearn_load_digits()
    pixels = digits.images.astype(np.float64) / 16.0
    n_samples = len(pixels)
    if images:
        X = pixels.reshape(n_samples, 1, 8, 8)
    else:
        X = pixels.reshape(n_samples, -1)
    y = digits.target.astype(np.int64)
    return X, y


def load_breast_cancer(standardize=False):
    """The Wisconsin breast-cancer data of scikit-learn: 569 samples, 30 features.

    Labels are 0 (malignant) and 1 (benign), scikit-learn's convention.

    Args:
        standardize: if True, every feature is shifted and scaled to mean 0 and standard
            deviation 1 over the whole data set. That is handy for a quick demo, but the
            statistics then include the samples you later hold out for testing; for an honest
            experiment keep the default (raw features), split first and scale with the
            training statistics (e.g. ``sklearn.preprocessing.StandardScaler``).

    Returns:
        ``(X, y)``: X float64 of shape ``(569, 30)``, y int64 of shape ``(569,)``.
    """
    from sklearn.datasets import load_breast_cancer as sklearn_load_breast_cancer

    cancer = sklearn_load_breast_cancer()
    X = cancer.data.astype(np.float64)
    if standardize:
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = cancer.target.astype(np.int64)
    return X, y


# ---------------------------------------------------------------------------
# The pairing-model CCD energies
# ---------------------------------------------------------------------------

# Coupled-cluster doubles correlation energy of the pairing model for 2, 4, ..., 40
# particles (the "VaryDimension" series of the notes' extrapolation example).
_PAIRING_N_PARTICLES = tuple(range(2, 42, 2))
_PAIRING_ENERGIES = (
    -0.03077640549, -0.08336233266, -0.1446729567, -0.2116753732, -0.2830637392,
    -0.3581341341, -0.436462435, -0.5177783846, -0.6019067271, -0.6887363571,
    -0.7782028952, -0.8702784034, -0.9649652536, -1.062292565, -1.16231451,
    -1.265109911, -1.370782966, -1.479465113, -1.591317992, -1.70653767,
)  # fmt: skip


def pairing_energies():
    """The 20-point CCD correlation-energy series of the pairing model.

    The notes train a recurrent net on the first 12 points and let it extrapolate the
    remaining 8. The values are stored in this module, so no file is needed.

    Returns:
        ``(n_particles, energies)``: two float64 arrays of shape ``(20,)``;
        ``n_particles`` is 2, 4, ..., 40.
    """
    n_particles = np.array(_PAIRING_N_PARTICLES, dtype=np.float64)
    energies = np.array(_PAIRING_ENERGIES, dtype=np.float64)
    return n_particles, energies


# ---------------------------------------------------------------------------
# Time series and windows for recurrent networks
# ---------------------------------------------------------------------------


def noisy_sine(n=1000, return_time=False):
    """The notes' toy series ``sin(0.02 t) + 2 U(0, 1)`` for ``t = 0, 1, ..., n-1``.

    The uniform noise comes from the library's generator, so ``tl.manual_seed(s)`` before
    the call gives the same series every time.

    Args:
        n: number of time steps (a positive int).
        return_time: if True, also return the time steps ``t``.

    Returns:
        The series, float64 of shape ``(n,)``; or ``(t, series)`` when ``return_time``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"noisy_sine: n must be a positive int, got {n!r}")
    t = np.arange(n, dtype=np.float64)
    series = np.sin(0.02 * t) + 2.0 * get_rng().random(n)
    if return_time:
        return t, series
    return series


def sequence_windows(series, length):
    """Cut a 1-D series into overlapping windows and the value that follows each one.

    This is the notes' ``convertToMatrix`` / ``format_data``: window ``i`` holds
    ``series[i : i + length]`` and its target is ``series[i + length]``. The trailing axis
    of size 1 is the feature axis a recurrent layer expects (``batch_first`` layout).

    Args:
        series: a 1-D array (or list) of ``n`` values.
        length: window length, an int with ``1 <= length < n``.

    Returns:
        ``(X, y)``: X of shape ``(n - length, length, 1)`` and y of shape ``(n - length, 1)``.
        Float series keep their dtype; integer series become float64.
    """
    values = np.asarray(series)
    if values.ndim != 1:
        raise ValueError(
            f"sequence_windows expects a 1-D series, got shape {values.shape}; "
            "flatten a column of values first with series.ravel()"
        )
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    n = len(values)
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise ValueError(f"sequence_windows: length must be an int, got {length!r}")
    if not 1 <= length < n:
        raise ValueError(
            f"sequence_windows: length must satisfy 1 <= length < len(series) = {n}, "
            f"got {length}"
        )
    # sliding_window_view gives all n - length + 1 windows without a Python loop; the last
    # one has no following value, so it is dropped.
    windows = np.lib.stride_tricks.sliding_window_view(values, length)[:-1]
    X = windows[:, :, np.newaxis].copy()
    y = values[length:, np.newaxis].copy()
    return X, y


# ---------------------------------------------------------------------------
# CIFAR-10 (binary version)
# ---------------------------------------------------------------------------

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR10_TEST_FILE = "test_batch.bin"
_CIFAR10_FOLDER = "cifar-10-batches-bin"
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR10_IMAGE_BYTES = 3 * 32 * 32
_CIFAR10_RECORD_BYTES = 1 + _CIFAR10_IMAGE_BYTES


def load_cifar10(path, max_per_batch=None):
    """Read the official CIFAR-10 binary batches from a local folder.

    Download the "CIFAR-10 binary version (suitable for C programs)",
    ``cifar-10-binary.tar.gz``, from https://www.cs.toronto.edu/~kriz/cifar.html and unpack
    it. ``path`` may be the unpacked ``cifar-10-batches-bin`` folder itself or the folder
    that contains it. It must hold ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
    ``test_batch.bin``.

    Each file is a sequence of 3073-byte records: one label byte (0..9, see
    ``CIFAR10_CLASSES``), then the 1024 red, 1024 green and 1024 blue pixel bytes of a 32x32
    image, each plane row by row. That is exactly NCHW order, so the images come back as
    ``(n, 3, 32, 32)`` for ``nn.Conv2d`` (Keras' ``cifar10.load_data`` in the notes gives
    ``(n, 32, 32, 3)`` instead; use ``X.transpose(0, 2, 3, 1)`` to plot an image).

    Args:
        path: the folder described above (str or path-like).
        max_per_batch: if given, read only the first ``max_per_batch`` images of each of the
            six files, for quick experiments (e.g. 1000 gives 5000 training and 1000 test
            images).

    Returns:
        ``(X_train, y_train, X_test, y_test)``: images float32 in [0, 1] (pixel / 255), of
        shape ``(50000, 3, 32, 32)`` and ``(10000, 3, 32, 32)`` for the full data set, and
        int64 labels of shape ``(50000,)`` and ``(10000,)``.

    Raises:
        FileNotFoundError: the folder or one of the six files is missing (the message says
            which files to put where).
        ValueError: a file is truncated (its size is not a whole number of records) or holds
            labels outside 0..9.
    """
    if max_per_batch is not None and (
        isinstance(max_per_batch, bool)
        or not isinstance(max_per_batch, (int, np.integer))
        or max_per_batch < 1
    ):
        raise ValueError(f"max_per_batch must be a positive int or None, got {max_per_batch!r}")
    folder = _find_cifar10_folder(path)
    train = [_read_cifar10_file(os.path.join(folder, name), max_per_batch)
             for name in _CIFAR10_TRAIN_FILES]
    X_test, y_test = _read_cifar10_file(os.path.join(folder, _CIFAR10_TEST_FILE), max_per_batch)
    X_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return X_train, y_train, X_test, y_test


def _find_cifar10_folder(path):
    """The folder that holds the six batch files: ``path`` or ``path/cifar-10-batches-bin``."""
    path = os.fspath(path)
    required = (*_CIFAR10_TRAIN_FILES, _CIFAR10_TEST_FILE)
    candidates = [os.path.join(path, _CIFAR10_FOLDER), path]
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, name)) for name in required):
            return folder
    # Report against the folder the user most likely meant.
    folder = candidates[0] if os.path.isdir(candidates[0]) else path
    if not os.path.isdir(folder):
        problem = f"the folder {folder!r} does not exist"
    else:
        missing = [name for name in required if not os.path.isfile(os.path.join(folder, name))]
        problem = f"{', '.join(missing)} missing in {folder!r}"
    raise FileNotFoundError(
        f"load_cifar10: {problem}. Put the six files {', '.join(required)} in {path!r} "
        f"(or in {os.path.join(path, _CIFAR10_FOLDER)!r}). They come from the "
        f'"CIFAR-10 binary version (suitable for C programs)", cifar-10-binary.tar.gz, at '
        f"{_CIFAR10_URL}; unpacking it creates the {_CIFAR10_FOLDER} folder."
    )


def _read_cifar10_file(filename, max_records=None):
    """Decode one binary batch file into ``(images float32 (n, 3, 32, 32), labels int64)``."""
    size = os.path.getsize(filename)
    if size == 0 or size % _CIFAR10_RECORD_BYTES != 0:
        raise ValueError(
            f"load_cifar10: {filename!r} has {size} bytes, which is not a positive multiple "
            f"of the {_CIFAR10_RECORD_BYTES}-byte record size; the file is truncated or not a "
            "CIFAR-10 binary batch (download it again)"
        )
    n_records = size // _CIFAR10_RECORD_BYTES
    if max_records is not None:
        n_records = min(n_records, max_records)
    raw = np.fromfile(filename, dtype=np.uint8, count=n_records * _CIFAR10_RECORD_BYTES)
    records = raw.reshape(n_records, _CIFAR10_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(
            f"load_cifar10: {filename!r} holds labels above 9; is it the CIFAR-100 binary "
            "version (2 label bytes per record) instead of CIFAR-10?"
        )
    images = records[:, 1:].astype(np.float32)
    images /= 255.0
    return images.reshape(n_records, 3, 32, 32), labels
