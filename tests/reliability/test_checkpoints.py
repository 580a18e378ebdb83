"""Checkpoints: hostile or damaged files raise clearly and never run code (issue 6, part 6).

Complements tests/test_serialization.py (non-npz, truncated at two points, object arrays,
foreign members, corrupt metadata, exception and SIGKILL mid-save keep the old file):
here a live pickle payload must not execute, every truncation point and random bit
flips raise ValueError (never MemoryError or a zipfile internal), a header declaring a
huge shape is refused before allocating, and a checkpoint from another architecture is
refused by ``load_state_dict`` naming the key, with the model unchanged.
"""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite import nn


class _Payload:
    """Unpickling this creates ``marker`` (as a real exploit would run a command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _object_npy(payload) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([payload], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _checkpoint(tmp_path, name="model.npz"):
    path = tmp_path / name
    tl.save({"w": np.arange(12.0).reshape(3, 4), "opt": {"step": 3, "m": np.ones(2)},
             "name": "mlp"}, path)
    return path


def test_the_payload_is_live(tmp_path):
    """Sanity check of the exploit itself: np.load with allow_pickle runs it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", _object_npy(_Payload(marker)))
    with np.load(path, allow_pickle=True) as archive:
        archive["w"]
    assert marker.exists()


@pytest.mark.parametrize("layout", ["object-member", "object-member-with-metadata",
                                    "raw-pickle", "pickle-named-npy"])
def test_pickle_payloads_are_refused_and_never_executed(tmp_path, layout):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    if layout == "raw-pickle":            # a torch-style pickle file under an .npz name
        path.write_bytes(pickle.dumps({"w": _Payload(marker)}))
    else:
        good = _checkpoint(tmp_path, "good.npz")
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
            for info in src.infolist():
                if layout == "object-member-with-metadata" or info.filename != "w.npy":
                    if info.filename == "w.npy":
                        continue
                    dst.writestr(info, src.read(info))
            if layout == "pickle-named-npy":
                dst.writestr("w.npy", pickle.dumps(_Payload(marker)))
            else:
                dst.writestr("w.npy", _object_npy(_Payload(marker)))
    with pytest.raises(ValueError, match=r"tl.load: .*(pickle|not a tinygrad_lite checkpoint)"):
        tl.load(path)
    assert not marker.exists()


def test_every_truncation_point_raises_value_error(tmp_path):
    path = _checkpoint(tmp_path)
    data = path.read_bytes()
    cut_path = tmp_path / "cut.npz"
    for cut in range(0, len(data), 7):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"tl.load: .*(truncated|not a tinygrad_lite)"):
            tl.load(cut_path)


@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1,
                      max_size=3))
def test_bit_flips_raise_value_error_or_load(tmp_path_factory, flips):
    """A damaged file raises ValueError (zip CRC-32, header and size checks); it never
    escapes as MemoryError, NotImplementedError, zipfile.BadZipFile... A flip the zip
    format cannot detect (a timestamp) may still load."""
    tmp_path = tmp_path_factory.mktemp("flip")
    path = _checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    path.write_bytes(bytes(data))
    try:
        tl.load(path)
    except ValueError as error:
        assert str(error).startswith("tl.load: ")


def test_a_flipped_data_bit_is_detected_by_the_crc(tmp_path):
    path = _checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    # the first member's data: right after the .npy header of w (its values 0..11)
    position = data.index(np.arange(12.0).tobytes()) + 8 * 5
    data[position] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"CRC|corrupt"):
        tl.load(path)


def test_a_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"declares shape \(1000000, 1000000\).*holds 64 bytes"):
        tl.load(path)


def test_a_non_npy_member_and_a_directory_are_refused(tmp_path):
    path = tmp_path / "junk.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", b"definitely not an npy header")
    with pytest.raises(ValueError, match=r"w.npy"):
        tl.load(path)
    with pytest.raises(ValueError, match=r"not a tinygrad_lite checkpoint"):
        tl.load(tmp_path)


def _mlp(hidden=4):
    return nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def test_a_checkpoint_of_another_architecture_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "other.npz"
    tl.save(_mlp(hidden=5).state_dict(), path)
    model = _mlp()
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"key '0.weight' has shape \(5, 3\) in the checkpoint "
                                         r"but \(4, 3\) in the model"):
        model.load_state_dict(tl.load(path))
    wider = {**{k: v.numpy() for k, v in model.state_dict().items()}, "3.weight": np.ones(2)}
    tl.save(wider, path)
    with pytest.raises(KeyError, match=r"unexpected keys \['3.weight'\]"):
        model.load_state_dict(tl.load(path))
    partial = {"0.weight": np.ones((4, 3))}
    tl.save(partial, path)
    with pytest.raises(KeyError, match=r"missing keys \['0.bias', '2.weight', '2.bias'\]"):
        model.load_state_dict(tl.load(path))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])
    missing, unexpected = model.load_state_dict(tl.load(path), strict=False)
    assert missing == ["0.bias", "2.weight", "2.bias"] and unexpected == []
    np.testing.assert_array_equal(model.state_dict()["0.weight"].numpy(), np.ones((4, 3)))


def test_a_checkpoint_with_a_non_numeric_value_is_refused_by_load_state_dict(tmp_path):
    path = tmp_path / "strings.npz"
    model = _mlp()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["0.bias"] = "oops"
    tl.save(state, path)
    with pytest.raises(TypeError, match=r"key '0.bias' holds a str"):
        model.load_state_dict(tl.load(path))


def test_round_trip_survives_a_failed_overwrite(tmp_path):
    """A save that fails (unstorable value) leaves the previous checkpoint and no temp file."""
    path = _checkpoint(tmp_path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"cannot store a object"):
        tl.save({"w": object()}, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
