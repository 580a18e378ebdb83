"""The CNN examples: the notes' digits CNN reaches 0.95 test accuracy, the --quick runs write
their figures, and the CIFAR-10 example runs on synthetic data and on a fake data folder
written in the official binary format."""

import time

import numpy as np
import pytest


def test_digits_cnn_reaches_95_percent(digits):
    import digits_cnn

    X_train, X_test, y_train, y_test = digits
    data = (X_train.reshape(-1, 1, 8, 8).astype(np.float32),
            X_test.reshape(-1, 1, 8, 8).astype(np.float32), y_train, y_test)
    start = time.perf_counter()
    model, history, test_accuracy = digits_cnn.train(data, eta=0.1, lmbd=1e-4, epochs=60,
                                                     validation=False)
    assert test_accuracy >= 0.95, test_accuracy
    assert time.perf_counter() - start < 60


def test_digits_cnn_quick_run_writes_figures(tmp_path, capsys):
    import digits_cnn

    result = digits_cnn.main(["--quick", "--out", str(tmp_path)])
    assert result["grid_test_accuracy"].shape == (2, 2)
    for name in ("digits_cnn_history.png", "digits_cnn_grid_training_accuracy.png",
                 "digits_cnn_grid_test_accuracy.png"):
        path = tmp_path / name
        assert path.exists() and path.stat().st_size > 1000, name
    out = capsys.readouterr().out
    assert "Conv2d" in out and "test accuracy" in out


def test_cifar10_quick_synthetic_run(tmp_path, capsys):
    import cifar10_cnn

    result = cifar10_cnn.main(["--quick", "--out", str(tmp_path)])
    assert result["mode"] == "synthetic"
    losses = result["losses"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert (tmp_path / "cifar10_cnn_smoke_loss.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in out
    assert "cifar-10-batches-bin" in out


def test_cifar10_smoke_loss_decreases_on_a_fixed_batch():
    import cifar10_cnn

    losses = cifar10_cnn.smoke_run(steps=30)
    assert abs(losses[0] - np.log(10)) < 0.3
    assert losses[-1] < losses[0] - 0.2


def _write_fake_cifar(folder, records_per_file=3, seed=0):
    """The six batch files in the official format: per record one label byte, then the
    1024 red, 1024 green and 1024 blue bytes of a 32x32 image, row by row."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
    for k, name in enumerate(names):
        records = bytearray()
        for r in range(records_per_file):
            records.append((k + r) % 10)
            records.extend(rng.integers(0, 256, 3 * 32 * 32, dtype=np.uint8).tobytes())
        (folder / name).write_bytes(bytes(records))


def test_cifar10_example_reads_a_binary_folder(tmp_path, capsys):
    import cifar10_cnn

    data = tmp_path / "data"
    _write_fake_cifar(data / "cifar-10-batches-bin", records_per_file=4)
    out = tmp_path / "figures"
    result = cifar10_cnn.main([str(data), "--quick", "--out", str(out)])
    assert result["mode"] == "cifar10"
    assert result["n_train"] == 20 and result["n_test"] == 4
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert len(result["history"]["loss"]) == 1
    for name in ("cifar10_examples.png", "cifar10_cnn_history.png"):
        assert (out / name).stat().st_size > 1000, name
    assert "20 training and 4 test images" in capsys.readouterr().out


def test_cifar10_example_missing_folder_says_where_to_put_files(tmp_path):
    import cifar10_cnn

    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        cifar10_cnn.main([str(tmp_path / "nowhere"), "--out", str(tmp_path)])


def test_cifar10_quick_run_on_the_numba_backend_restores_numpy(tmp_path):
    pytest.importorskip("numba")
    import cifar10_cnn

    import tinygrad_lite as tl

    result = cifar10_cnn.main(["--quick", "--backend", "numba", "--out", str(tmp_path)])
    assert result["losses"][-1] < result["losses"][0]
    assert tl.get_backend_name() == "numpy"
