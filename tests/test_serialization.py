"""Tests of tinygrad_lite.serialization: round trips, safety and atomic writes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite import serialization
from tinygrad_lite.serialization import load, save

SERIALIZATION_FILE = Path(serialization.__file__).resolve()


def _assert_same(loaded, expected):
    """Equal structure, types and values; arrays compared with dtype and shape."""
    if isinstance(expected, np.ndarray):
        assert isinstance(loaded, np.ndarray)
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape
        np.testing.assert_array_equal(loaded, expected)
        return
    assert type(loaded) is type(expected), (loaded, expected)
    if isinstance(expected, dict):
        assert list(loaded) == list(expected)
        for key in expected:
            _assert_same(loaded[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(loaded) == len(expected)
        for item, expected_item in zip(loaded, expected):
            _assert_same(item, expected_item)
    else:
        assert loaded == expected


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


def test_flat_round_trip(tmp_path):
    state = {
        "fc1.weight": np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
        "fc1.bias": np.zeros(4),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), dtype=np.float32),
    }
    path = tmp_path / "model.npz"
    save(state, path)
    _assert_same(load(path), state)


def test_flat_state_dict_is_readable_with_plain_numpy(tmp_path):
    state = {"fc.weight": np.arange(6.0).reshape(2, 3), "fc.bias": np.ones(2)}
    save(state, tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["fc.weight"], state["fc.weight"])
        assert set(archive.files) == {"fc.weight", "fc.bias", serialization.METADATA_KEY}


def test_nested_optimizer_state_round_trip(tmp_path):
    state = {
        "state": {
            0: {"step": 3, "exp_avg": np.ones((2, 2)), "exp_avg_sq": np.full(2, 0.5)},
            1: {},
        },
        "param_groups": [
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0,
                "amsgrad": False,
                "nesterov": None,
                "params": [0, 1],
                "name": "body",
            }
        ],
        "numpy_scalar": np.float32(2.5),
        "complex": 1 + 2j,
        "inf": float("inf"),
        "empty_list": [],
    }
    path = tmp_path / "optim.npz"
    save(state, path)
    _assert_same(load(path), state)


def test_colliding_flattened_keys_both_survive(tmp_path):
    state = {"a/b": np.ones(2), "a": {"b": np.zeros(3)}, serialization.METADATA_KEY: 5}
    save(state, tmp_path / "c.npz")
    _assert_same(load(tmp_path / "c.npz"), state)


def test_tensor_values_come_back_as_numpy(tmp_path):
    tensor_module = pytest.importorskip("tinygrad_lite.autograd.tensor")
    weight = tensor_module.Tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    save({"w": weight, "nested": {"b": tensor_module.Tensor(np.ones(2))}}, tmp_path / "t.npz")
    loaded = load(tmp_path / "t.npz")
    _assert_same(loaded, {"w": weight.numpy(), "nested": {"b": np.ones(2)}})


def test_duck_typed_numpy_values(tmp_path):
    class FakeTensor:
        def numpy(self):
            return np.array([1.0, 2.0])

    save({"x": FakeTensor()}, tmp_path / "d.npz")
    _assert_same(load(tmp_path / "d.npz"), {"x": np.array([1.0, 2.0])})


def test_path_is_used_exactly(tmp_path):
    save({"x": np.ones(1)}, tmp_path / "run.ckpt")
    assert os.listdir(tmp_path) == ["run.ckpt"]
    _assert_same(load(str(tmp_path / "run.ckpt")), {"x": np.ones(1)})


def test_overwrite_replaces_old_checkpoint(tmp_path):
    save({"x": np.ones(3)}, tmp_path / "m.npz")
    save({"y": np.zeros(2)}, tmp_path / "m.npz")
    _assert_same(load(tmp_path / "m.npz"), {"y": np.zeros(2)})
    assert os.listdir(tmp_path) == ["m.npz"]


def test_plain_npz_loads_as_flat_dict(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(3), b=np.eye(2))
    _assert_same(load(tmp_path / "plain.npz"), {"a": np.arange(3), "b": np.eye(2)})


# ---------------------------------------------------------------------------
# what save refuses
# ---------------------------------------------------------------------------


def test_save_needs_a_dict(tmp_path):
    with pytest.raises(TypeError, match="expects a dict"):
        save([np.ones(2)], tmp_path / "x.npz")


@pytest.mark.parametrize(
    "state, message",
    [
        ({"opt": {"s": {1, 2}}}, "set at key 'opt/s'"),
        ({"bad": np.array([{}, None], dtype=object)}, "object array"),
        ({"big": 2**80}, "object array"),
        ({(1, 2): np.ones(1)}, "keys must be str or int"),
        ({True: np.ones(1)}, "keys must be str or int"),
    ],
)
def test_save_refuses_unstorable_values(tmp_path, state, message):
    with pytest.raises(TypeError, match=message):
        save(state, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# what load refuses
# ---------------------------------------------------------------------------


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "absent.npz")


def test_load_non_npz_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a checkpoint at all\n")
    with pytest.raises(ValueError, match="is not a tinygrad_lite checkpoint"):
        load(path)


def test_load_truncated_file(tmp_path):
    path = tmp_path / "model.npz"
    save({"w": np.ones((100, 100))}, path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated"):
            load(path)


def test_load_refuses_object_arrays(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, ok=np.ones(2), payload=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="refuses pickled data"):
        load(path)


def test_load_refuses_a_zip_with_other_members(tmp_path):
    import zipfile

    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a tinygrad_lite checkpoint"):
        load(path)


def test_load_corrupt_metadata(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, **{serialization.METADATA_KEY: np.frombuffer(b"{oops", dtype=np.uint8)})
    with pytest.raises(ValueError, match="metadata"):
        load(path)


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------


def test_exception_mid_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = {"w": np.arange(10.0)}
    save(old, path)
    real_write_array = serialization._write_array
    calls = []

    def write_then_crash(file, array):
        calls.append(array.shape)
        if len(calls) == 2:
            file.write(b"\x93NUMPY partial bytes")
            raise OSError("simulated crash: disk full")
        real_write_array(file, array)

    monkeypatch.setattr(serialization, "_write_array", write_then_crash)
    with pytest.raises(OSError, match="simulated crash"):
        save({"a": np.ones(1000), "b": np.ones(1000), "c": np.ones(3)}, path)
    assert len(calls) == 2
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left
    _assert_same(load(path), old)


_KILLED_WRITER = textwrap.dedent(
    """
    import importlib.util, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("serialization", sys.argv[1])
    serialization = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serialization)
    big = {"w": np.ones(16_000_000), "v": np.ones(16_000_000)}  # 256 MB
    print("ready", flush=True)
    serialization.save(big, sys.argv[2])
    print("finished", flush=True)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_sigkill_mid_save_keeps_old_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    old = {"w": np.arange(5.0), "step": 12}
    save(old, path)
    # Load serialization.py by path, so the child does not import the whole package.
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(SERIALIZATION_FILE), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10.0
        while not any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    _assert_same(load(path), old)
    leftovers = [name for name in os.listdir(tmp_path) if name != "model.npz"]
    assert all(name.startswith(".model.npz.") and name.endswith(".tmp") for name in leftovers)
