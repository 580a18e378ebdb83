"""Tests of tinygrad_lite.datasets: shapes, dtypes, values and error messages."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite import datasets
from tinygrad_lite.backend.random import manual_seed

REPO_ROOT = Path(__file__).resolve().parents[1]
CSV_NAME = "pairing_ccd_vary_dimension.csv"

# ---------------------------------------------------------------------------
# scikit-learn data sets
# ---------------------------------------------------------------------------


def test_load_digits_flat():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_load_digits_images_match_flat():
    X_flat, y_flat = datasets.load_digits()
    X_img, y_img = datasets.load_digits(images=True)
    assert X_img.shape == (1797, 1, 8, 8) and X_img.dtype == np.float64
    np.testing.assert_array_equal(X_img.reshape(1797, 64), X_flat)
    np.testing.assert_array_equal(y_img, y_flat)


def test_load_digits_is_raw_pixels_over_16():
    from sklearn.datasets import load_digits as sklearn_load_digits

    X, _ = datasets.load_digits()
    np.testing.assert_array_equal(X * 16, sklearn_load_digits().data)


def test_load_breast_cancer_raw():
    X, y = datasets.load_breast_cancer()
    assert X.shape == (569, 30) and X.dtype == np.float64
    assert y.shape == (569,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    assert X.max() > 100  # raw features (e.g. mean area) are not scaled


def test_load_breast_cancer_standardized():
    X, _ = datasets.load_breast_cancer(standardize=True)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1.0, rtol=1e-12)


# ---------------------------------------------------------------------------
# pairing energies
# ---------------------------------------------------------------------------


def test_pairing_energies_shapes():
    n_particles, energies = datasets.pairing_energies()
    assert n_particles.shape == energies.shape == (20,)
    assert n_particles.dtype == energies.dtype == np.float64
    np.testing.assert_array_equal(n_particles, np.arange(2, 42, 2))
    assert np.all(np.diff(energies) < 0)  # the correlation energy keeps decreasing


def _find_csv():
    for folder in (REPO_ROOT.parent / "shared" / "data", Path("/work/shared/data")):
        if (folder / CSV_NAME).is_file():
            return folder / CSV_NAME
    return None


def test_pairing_energies_match_csv():
    path = _find_csv()
    if path is None:
        pytest.skip(f"{CSV_NAME} not available")
    with open(path) as handle:
        rows = list(csv.reader(line for line in handle if not line.startswith("#")))
    assert rows[0] == ["n_particles", "correlation_energy"]
    table = np.array(rows[1:], dtype=np.float64)
    n_particles, energies = datasets.pairing_energies()
    np.testing.assert_array_equal(n_particles, table[:, 0])
    np.testing.assert_array_equal(energies, table[:, 1])


# ---------------------------------------------------------------------------
# noisy sine and sequence windows
# ---------------------------------------------------------------------------


def test_noisy_sine_shape_and_noise_range():
    manual_seed(0)
    t, series = datasets.noisy_sine(500, return_time=True)
    assert series.shape == (500,) and series.dtype == np.float64
    np.testing.assert_array_equal(t, np.arange(500))
    noise = series - np.sin(0.02 * t)
    assert noise.min() >= 0.0 and noise.max() < 2.0
    assert 0.8 < noise.mean() < 1.2  # 2 U(0, 1) has mean 1
    assert datasets.noisy_sine().shape == (1000,)


def test_noisy_sine_reproducible_under_manual_seed():
    manual_seed(123)
    first = datasets.noisy_sine(50)
    second = datasets.noisy_sine(50)
    manual_seed(123)
    np.testing.assert_array_equal(datasets.noisy_sine(50), first)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_noisy_sine_rejects_bad_n(n):
    with pytest.raises(ValueError, match="positive int"):
        datasets.noisy_sine(n)


def _windows_by_hand(series, length):
    """The notes' format_data loop."""
    X, Y = [], []
    for i in range(len(series) - length):
        X.append(np.reshape(series[i:i + length], (length, 1)))
        Y.append([series[i + length]])
    return np.array(X), np.array(Y)


@pytest.mark.parametrize("length", [1, 2, 4, 19])
def test_sequence_windows_matches_loop(length):
    series = np.random.default_rng(1).normal(size=20)
    X, y = datasets.sequence_windows(series, length)
    X_loop, y_loop = _windows_by_hand(series, length)
    assert X.shape == (20 - length, length, 1) and y.shape == (20 - length, 1)
    np.testing.assert_array_equal(X, X_loop)
    np.testing.assert_array_equal(y, y_loop)


def test_sequence_windows_on_pairing_series():
    _, energies = datasets.pairing_energies()
    X, y = datasets.sequence_windows(energies[:12], 2)
    assert X.shape == (10, 2, 1)
    assert X[0, :, 0].tolist() == energies[:2].tolist() and y[0, 0] == energies[2]


def test_sequence_windows_dtypes_and_independent_copy():
    series32 = np.arange(6, dtype=np.float32)
    X, y = datasets.sequence_windows(series32, 3)
    assert X.dtype == y.dtype == np.float32
    X[0, 0, 0] = 99.0  # a real array, not a view into the series
    assert series32[0] == 0.0
    X_int, _ = datasets.sequence_windows([1, 2, 3, 4], 2)
    assert X_int.dtype == np.float64


@pytest.mark.parametrize(
    "series, length, message",
    [
        (np.zeros((5, 1)), 2, "1-D series"),
        (np.zeros(5), 0, "1 <= length"),
        (np.zeros(5), 5, "1 <= length"),
        (np.zeros(5), 2.0, "must be an int"),
    ],
)
def test_sequence_windows_validates(series, length, message):
    with pytest.raises(ValueError, match=message):
        datasets.sequence_windows(series, length)


# ---------------------------------------------------------------------------
# CIFAR-10 binary reader
# ---------------------------------------------------------------------------

CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def _cifar_record(label, red, green, blue, marked_pixels=()):
    """One 3073-byte record written byte by byte as the official format describes.

    Every pixel of a plane gets the plane's value, except ``marked_pixels``: a list of
    ``(channel, row, column, value)``.
    """
    planes = [np.full((32, 32), value, dtype=np.uint8) for value in (red, green, blue)]
    for channel, row, column, value in marked_pixels:
        planes[channel][row, column] = value
    record = bytearray([label])
    for plane in planes:  # red plane, then green, then blue; each row by row
        for row in range(32):
            record.extend(bytes(plane[row].tolist()))
    assert len(record) == 3073
    return bytes(record)


def _write_cifar(folder, records_per_file=2):
    """Write the six batch files; file k, record r has label (k + r) % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(CIFAR_FILES):
        records = [
            _cifar_record((k + r) % 10, red=10 + k, green=100 + r, blue=200,
                          marked_pixels=[(0, 0, 1, 255), (2, 31, 0, 7)])
            for r in range(records_per_file)
        ]
        (folder / name).write_bytes(b"".join(records))


def test_load_cifar10_layout_and_values(tmp_path):
    _write_cifar(tmp_path, records_per_file=2)
    X_train, y_train, X_test, y_test = datasets.load_cifar10(tmp_path)
    assert X_train.shape == (10, 3, 32, 32) and X_test.shape == (2, 3, 32, 32)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    np.testing.assert_array_equal(y_train, [0, 1, 1, 2, 2, 3, 3, 4, 4, 5])
    np.testing.assert_array_equal(y_test, [5, 6])
    assert 0.0 <= X_train.min() and X_train.max() <= 1.0
    # record 1 of data_batch_2 (file k=1, r=1): planes R=11, G=101, B=200
    image = X_train[3]
    assert image[0, 5, 5] == np.float32(11 / 255)
    assert image[1, 5, 5] == np.float32(101 / 255)
    assert image[2, 5, 5] == np.float32(200 / 255)
    # the marked pixels: red row 0 column 1, blue row 31 column 0
    assert image[0, 0, 1] == 1.0 and image[0, 1, 0] == np.float32(11 / 255)
    assert image[2, 31, 0] == np.float32(7 / 255)


def test_load_cifar10_accepts_parent_folder_and_max_per_batch(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-bin", records_per_file=3)
    X_train, y_train, X_test, y_test = datasets.load_cifar10(str(tmp_path), max_per_batch=1)
    assert X_train.shape == (5, 3, 32, 32) and X_test.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(y_train, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y_test, [5])


def test_load_cifar10_missing_folder_message(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_cifar10(missing)
    message = str(info.value)
    assert "does not exist" in message and str(missing) in message
    for name in CIFAR_FILES:
        assert name in message
    assert "CIFAR-10 binary version" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "cifar-10-batches-bin" in message


def test_load_cifar10_names_the_missing_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    _write_cifar(folder)
    os.remove(folder / "data_batch_3.bin")
    with pytest.raises(FileNotFoundError, match=r"data_batch_3\.bin missing in"):
        datasets.load_cifar10(tmp_path)


def test_load_cifar10_truncated_file(tmp_path):
    _write_cifar(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated") as info:
        datasets.load_cifar10(tmp_path)
    assert "test_batch.bin" in str(info.value)


def test_load_cifar10_rejects_cifar100_labels(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_1.bin").write_bytes(_cifar_record(57, 0, 0, 0))
    with pytest.raises(ValueError, match="CIFAR-100"):
        datasets.load_cifar10(tmp_path)


def test_load_cifar10_rejects_bad_max_per_batch(tmp_path):
    _write_cifar(tmp_path)
    with pytest.raises(ValueError, match="max_per_batch"):
        datasets.load_cifar10(tmp_path, max_per_batch=0)
