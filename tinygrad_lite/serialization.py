"""Saving and loading checkpoints as plain ``.npz`` files, without pickle.

``tl.save(model.state_dict(), "model.npz")`` writes every array of a (possibly nested)
state dict into a numpy ``.npz`` archive; ``tl.load("model.npz")`` reads it back, and
``model.load_state_dict(...)`` accepts the numpy arrays it returns.

File format
-----------
An ``.npz`` file is a zip archive with one ``.npy`` file per array. We write:

- one entry per array leaf, named by its key path joined with ``SEPARATOR`` (``"/"``):
  ``{"fc.weight": w}`` gives an entry ``fc.weight`` and an optimizer state
  ``{"state": {0: {"exp_avg": m}}}`` gives ``state/0/exp_avg``. A flat model state dict is
  therefore readable with plain ``np.load``. (Should two paths collide, the later one gets a
  ``#2``, ``#3``, ... suffix; the metadata records the real names.)
- numeric scalars (Python ``int``/``float``/``bool``/``complex`` and numpy scalars) as 0-d
  arrays, named the same way;
- one metadata entry, ``METADATA_KEY``: UTF-8 JSON bytes stored as a ``uint8`` array. It
  records the structure (dicts with their ``str`` or ``int`` keys, lists, tuples), the type
  of every scalar, strings and ``None``, so ``load`` rebuilds exactly what was saved.

Values may be numpy arrays, Tensors (anything with a ``.numpy()`` method; they come back as
numpy arrays), numbers, strings, ``None``, and dicts, lists and tuples of these.

Safety
------
Both directions use ``allow_pickle=False``: a checkpoint never contains pickled objects, and
``load`` refuses a file that does, because unpickling untrusted data can run arbitrary code.

Writes are atomic: ``save`` writes to a temporary file in the destination folder, flushes
and ``fsync``\\ s it, then renames it over the destination with ``os.replace``. A crash or
an exception mid-save never leaves a half-written checkpoint; the previous file stays intact.
(A process killed mid-save may leave its hidden ``.<name>.<random>.tmp`` file behind.)

Unlike ``np.savez``, we write exactly to the path given: no ``.npz`` is appended, so
``tl.save(sd, "run.ckpt")`` and ``tl.load("run.ckpt")`` name the same file.
"""

import contextlib
import json
import os
import uuid
import zipfile
from collections.abc import Mapping

import numpy as np

SEPARATOR = "/"
METADATA_KEY = "__tinygrad_lite__"
FORMAT_NAME = "tinygrad_lite"
FORMAT_VERSION = 1

_SCALAR_TYPES = {"bool": bool, "int": int, "float": float, "complex": complex}

# ---------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------


def save(state_dict, path):
    """Write a (possibly nested) state dict to ``path`` as an ``.npz`` file, atomically.

    Args:
        state_dict: a dict whose keys are ``str`` or ``int`` and whose values are arrays,
            Tensors, numbers, strings, ``None`` or nested dicts / lists / tuples of these.
        path: the file to write (str or path-like), used exactly as given.

    Raises:
        TypeError: a key or value that cannot be stored without pickle (the message names
            its key path).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"tl.save expects a dict (e.g. model.state_dict()), "
                        f"got {type(state_dict).__name__}")
    arrays = {}
    tree = _encode(state_dict, (), arrays)
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "tree": tree}
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)
    _atomic_write(os.fspath(path), arrays)


def _encode(value, key_path, arrays):
    """Describe ``value`` as a JSON-able node; array and number leaves go into ``arrays``."""
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"tl.save: dict keys must be str or int, got {key!r} "
                                f"under {_describe(key_path)}")
            items.append([key, _encode(item, (*key_path, key), arrays)])
        return {"kind": "dict", "items": items}
    if isinstance(value, (list, tuple)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        items = [_encode(item, (*key_path, i), arrays) for i, item in enumerate(value)]
        return {"kind": kind, "items": items}
    if value is None:
        return {"kind": "none"}
    if isinstance(value, np.generic):  # checked before str/float: np.float64 is a float
        return {"kind": "scalar", "type": "numpy", "name": _store(value, key_path, arrays)}
    if isinstance(value, str):
        return {"kind": "str", "value": value}
    for type_name, scalar_type in _SCALAR_TYPES.items():  # bool first: a bool is an int
        if isinstance(value, scalar_type):
            name = _store(scalar_type(value), key_path, arrays)
            return {"kind": "scalar", "type": type_name, "name": name}
    if isinstance(value, np.ndarray):
        return {"kind": "array", "name": _store(value, key_path, arrays)}
    if callable(getattr(value, "numpy", None)):  # a Tensor, or anything array-like
        return {"kind": "array", "name": _store(value.numpy(), key_path, arrays)}
    raise TypeError(f"tl.save: cannot store a {type(value).__name__} at "
                    f"{_describe(key_path)}; use arrays, Tensors, numbers, str or None")


def _store(value, key_path, arrays):
    """Put ``value`` into ``arrays`` under a fresh name derived from its key path."""
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise TypeError(f"tl.save: the value at {_describe(key_path)} would be an object "
                        "array, which needs pickle; convert it to a numeric array "
                        "(a Python int beyond 64 bits also ends up here)")
    base = SEPARATOR.join(str(key) for key in key_path)
    name, suffix = base, 1
    while name in arrays or name == METADATA_KEY:
        suffix += 1
        name = f"{base}#{suffix}"
    arrays[name] = array
    return name


def _describe(key_path):
    """Human-readable position of a value, e.g. ``key 'state/0/exp_avg'``."""
    if not key_path:
        return "the top level"
    return "key " + repr(SEPARATOR.join(str(key) for key in key_path))


def _atomic_write(path, arrays):
    """Write ``arrays`` to a temporary file next to ``path``, then rename it onto ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    temp_path = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temp_path, "xb") as handle:
            _write_npz(handle, arrays)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the rename
        os.replace(temp_path, path)  # atomic: readers see the old file or the new one
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise
    _fsync_directory(directory)


def _write_npz(handle, arrays):
    """The ``.npz`` layout of ``np.savez``: an uncompressed zip of ``<name>.npy`` members."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                _write_array(member, array)


def _write_array(file, array):
    """Write one array in ``.npy`` format, refusing object arrays (pickle)."""
    np.lib.format.write_array(file, array, allow_pickle=False)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); other systems do not allow this, and skip it."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------


def load(path):
    """Read a checkpoint written by :func:`save`.

    Returns the saved structure: dicts, lists and tuples as saved, numpy arrays for array
    (and Tensor) leaves, Python ``int``/``float``/``bool``/``complex``/``str``/``None`` for
    Python scalars, numpy scalars for numpy scalars. A plain ``.npz`` made by ``np.savez``
    (no metadata entry) loads as a flat dict of arrays.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an ``.npz`` checkpoint, is truncated or corrupt, or holds
            pickled (object) arrays, which are refused.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"tl.load: no checkpoint file at {path!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"tl.load: {path!r} is not a tinygrad_lite checkpoint: it is not an "
                         ".npz (zip) archive, or it is truncated (its zip index is missing)")
    arrays = _read_arrays(path)
    if METADATA_KEY not in arrays:
        return arrays
    metadata = _parse_metadata(arrays.pop(METADATA_KEY), path)
    try:
        return _decode(metadata["tree"], arrays)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"tl.load: {path!r} is corrupt: its metadata does not match its "
                         f"arrays ({error!r})") from error


def _read_arrays(path):
    """Every ``.npy`` member of the archive, as a dict ``name -> array``."""
    try:
        with zipfile.ZipFile(path) as archive:
            member_names = archive.namelist()
            unexpected = [name for name in member_names if not name.endswith(".npy")]
            if unexpected:
                raise ValueError(f"{_not_a_checkpoint(path)}: it holds {unexpected[0]!r}, "
                                 "which is not an .npy array")
            return {name[: -len(".npy")]: _read_member(archive, name, path)
                    for name in member_names}
    # NotImplementedError / RuntimeError: a (corrupt) member claims a compression method
    # zipfile lacks, or encryption
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
        raise ValueError(f"{_not_a_checkpoint(path)} ({error})") from error


def _check_member_size(archive, member_name, path):
    """Refuse a member whose header declares more data than the member holds.

    A corrupt or hostile header could declare a shape of 10^12 elements; numpy would
    try to allocate it all (MemoryError) before noticing the data is not there.
    """
    try:
        with archive.open(member_name) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            header_size = member.tell()
    except ValueError as error:  # not an .npy header
        raise ValueError(f"{_not_a_checkpoint(path)} ({member_name}: {error})") from error
    if dtype.hasobject:
        return  # read_array refuses it below, with the pickle message
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = archive.getinfo(member_name).file_size - header_size
    if declared != held:
        raise ValueError(f"{_not_a_checkpoint(path)} ({member_name}: its header declares "
                         f"shape {shape} of {dtype} ({declared} bytes) but it holds "
                         f"{held} bytes)")


def _read_member(archive, member_name, path):
    """One ``.npy`` member, read with ``allow_pickle=False``."""
    _check_member_size(archive, member_name, path)
    try:
        with archive.open(member_name) as member:
            array = np.lib.format.read_array(member, allow_pickle=False)
            # Reading on to the end makes zipfile verify the member's CRC-32 (a flipped
            # bit raises BadZipFile); read_array alone stops just short of it.
            member.read()
            return array
    except ValueError as error:
        if "allow_pickle" in str(error):  # numpy's message for an object array
            raise ValueError(
                f"tl.load: {path!r} contains object arrays, i.e. pickled Python objects; "
                "tl.load refuses pickled data because unpickling can run arbitrary code. "
                "If you trust the file, open it with np.load(path, allow_pickle=True)."
            ) from error
        raise ValueError(f"{_not_a_checkpoint(path)} ({member_name}: {error})") from error


def _not_a_checkpoint(path):
    """The start of the error message for an unreadable file."""
    return f"tl.load: {path!r} is not a tinygrad_lite checkpoint, or it is truncated or corrupt"


def _parse_metadata(raw, path):
    """Decode and check the JSON metadata entry."""
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"tl.load: {path!r} has an unreadable metadata entry") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"tl.load: {path!r} is not a tinygrad_lite checkpoint "
                         "(unknown metadata)")
    if metadata.get("version") != FORMAT_VERSION:
        raise ValueError(f"tl.load: {path!r} uses checkpoint format version "
                         f"{metadata.get('version')!r}; this tinygrad_lite reads version "
                         f"{FORMAT_VERSION}")
    return metadata


def _decode(node, arrays):
    """Rebuild the value a metadata node describes (inverse of :func:`_encode`)."""
    kind = node["kind"]
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in node["items"]}
    if kind == "list":
        return [_decode(item, arrays) for item in node["items"]]
    if kind == "tuple":
        return tuple(_decode(item, arrays) for item in node["items"])
    if kind == "none":
        return None
    if kind == "str":
        return node["value"]
    if kind == "array":
        return arrays[node["name"]]
    if kind == "scalar":
        array = arrays[node["name"]]
        if node["type"] == "numpy":
            return array[()]
        return _SCALAR_TYPES[node["type"]](array[()])
    raise ValueError(f"unknown node kind {kind!r}")
