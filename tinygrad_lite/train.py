"""Keras-style conveniences on top of the PyTorch-style core: ``fit``, ``evaluate``,
``predict`` and ``summary``.

The training loop written out by hand in every PyTorch tutorial is::

    for epoch in range(epochs):
        model.train()
        for xb, yb in DataLoader(TensorDataset(X, y), batch_size, shuffle=True):
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()

:func:`fit` is exactly that loop, plus the book-keeping Keras users expect: a progress bar,
the mean loss and accuracy of every epoch, an optional validation set and a
:class:`History` that can plot itself::

    history = tl.train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=1.0),
                           (X_train, y_train), epochs=100, batch_size=100,
                           validation_data=(X_test, y_test))
    history.history["val_accuracy"][-1]
    history.plot().savefig("history.png")

Conventions (all documented again on the functions):

- Data is an ``(X, y)`` pair of numpy arrays or Tensors, or a ``DataLoader`` yielding
  ``(xb, yb)`` batches. Floating-point inputs and targets are cast to the dtype of the
  model's parameters (float64 digits fed to a float32 model train in float32), and moved to
  the parameters' device.
- The loss of an epoch is the mean of the batch losses weighted by batch size, i.e. the
  mean over samples when ``loss_fn`` averages over its batch (``reduction="mean"``).
- Metric ``"accuracy"``: for an output with several columns the prediction is the
  ``argmax`` over the last axis, and the target may be class indices or one-hot (or
  probability) rows; for a single output column (or a 1-D output) the prediction is
  ``output > 0.5`` (a probability, e.g. after ``sigmoid``; for logits pass a callable
  metric or threshold yourself) compared with the 0/1 target. A metric may also be any
  callable ``metric(output, target) -> float`` on numpy arrays, averaged over batches
  weighted by batch size and reported under its ``__name__``.
"""

from __future__ import annotations

import gc
import math
import sys

import numpy as np

from .autograd.mode import no_grad
from .autograd.tensor import Tensor
from .data import DataLoader, TensorDataset

__all__ = ["History", "fit", "evaluate", "predict", "summary"]


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


class History:
    """What :func:`fit` returns: the per-epoch values, like Keras' ``History``.

    Attributes:
        history: dict of lists, one value per epoch, keyed ``"loss"``, one key per metric
            (``"accuracy"``), and ``"val_loss"``, ``"val_accuracy"`` when there is
            validation data.
        epoch: the epoch numbers ``[0, 1, ...]`` (0-based, as in Keras).
        params: the settings of the run (``epochs``, ``batch_size``, ``steps``).
    """

    def __init__(self, params: dict | None = None):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = dict(params or {})

    def _record(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History(epochs={len(self.epoch)}{', ' + last if last else ''})"

    def plot(self, figsize=None):
        """A matplotlib figure with one panel for the loss and one per metric.

        Training curves are solid, validation curves dashed; each panel has a title, a
        legend and labelled axes. Returns the ``Figure`` (save it with ``savefig``).
        """
        # A bare Figure, not pyplot: nothing piles up in pyplot's registry and no
        # window pops up in a script; save it with fig.savefig(path).
        from matplotlib.figure import Figure

        names = [key for key in self.history if not key.startswith("val_")]
        if not names:
            raise ValueError("History.plot: nothing recorded yet (fit has not run)")
        width = 4.5 * len(names)
        fig = Figure(figsize=figsize or (width, 3.6))
        axes = fig.subplots(1, len(names), squeeze=False)
        epochs = np.asarray(self.epoch) + 1
        for ax, name in zip(axes[0], names):
            label = name.replace("_", " ")
            ax.plot(epochs, self.history[name], "-", label=f"training {label}")
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], "--", label=f"validation {label}")
            ax.set_title(label.capitalize())
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        return fig


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def accuracy(output: np.ndarray, target: np.ndarray) -> float:
    """Fraction of correct predictions (see the module docstring for the rules)."""
    return _correct(output, target) / max(len(output), 1)


def _correct(output: np.ndarray, target: np.ndarray) -> int:
    """Number of correct predictions in one batch."""
    output, target = np.asarray(output), np.asarray(target)
    n = len(output)
    if output.ndim >= 2 and output.shape[-1] > 1:
        predicted = output.argmax(axis=-1)
        if target.ndim == output.ndim and target.shape[-1] == output.shape[-1]:
            target = target.argmax(axis=-1)  # one-hot or probability rows
        elif target.shape != predicted.shape:
            target = target.reshape(predicted.shape)
    else:  # one output column: a probability, threshold 0.5
        predicted = output.reshape(n, -1)[:, 0] > 0.5
        target = np.asarray(target).reshape(n, -1)[:, 0] > 0.5
    return int(np.count_nonzero(predicted == target))


def _resolve_metrics(metrics):
    """``[(name, fn)]`` from ``("accuracy", my_metric, ...)``; ``None`` or ``()`` -> []."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    resolved = []
    for metric in metrics:
        if isinstance(metric, str):
            if metric.lower() not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {metric!r}: use 'accuracy' or a callable "
                                 "metric(output, target) -> float on numpy arrays")
            resolved.append(("accuracy", None))  # None: the fast counting path
        elif callable(metric):
            resolved.append((getattr(metric, "__name__", type(metric).__name__), metric))
        else:
            raise ValueError(f"a metric must be a name or a callable, got {metric!r}")
    return resolved


class _Accumulator:
    """Running, batch-size-weighted means of the loss and the metrics over one pass."""

    def __init__(self, metrics, with_loss: bool):
        self.metrics = metrics
        self.with_loss = with_loss
        self.n = 0
        self.loss_sum = 0.0
        self.metric_sums = [0.0] * len(metrics)

    def add(self, loss_value, output: Tensor | None, target: Tensor, n: int) -> None:
        self.n += n
        if self.with_loss:
            self.loss_sum += loss_value * n
        if self.metrics:
            out_np, target_np = output.numpy(), target.numpy()
            for index, (_, fn) in enumerate(self.metrics):
                if fn is None:
                    self.metric_sums[index] += _correct(out_np, target_np)
                else:
                    self.metric_sums[index] += float(fn(out_np, target_np)) * n

    def logs(self, prefix: str = "") -> dict:
        n = max(self.n, 1)
        logs = {}
        if self.with_loss:
            logs[prefix + "loss"] = self.loss_sum / n
        for (name, _), total in zip(self.metrics, self.metric_sums):
            logs[prefix + name] = total / n
        return logs


# ---------------------------------------------------------------------------
# Data handling
# ---------------------------------------------------------------------------


def _to_numpy(value):
    return value.numpy() if isinstance(value, Tensor) else np.asarray(value)


def _check_positive_int(value, name: str, function: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{function}: {name} must be a positive int, got {value!r}")
    return int(value)


def _xy_arrays(data, name: str, function: str):
    """Validate an ``(X, y)`` pair and return it as two numpy arrays."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{function}: {name} must be an (X, y) pair of arrays/Tensors or a "
                         f"DataLoader, got {type(data).__name__}"
                         + (f" of length {len(data)}" if isinstance(data, (tuple, list))
                            else ""))
    X, y = (_to_numpy(part) for part in data)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{function}: {name} X and y need a first (sample) axis, got shapes "
                         f"{X.shape} and {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"{function}: {name} has {len(X)} samples in X but {len(y)} in y; "
                         "they must have the same length")
    if len(X) == 0:
        raise ValueError(f"{function}: {name} is empty (0 samples)")
    return X, y


def _model_dtype_device(model):
    for param in model.parameters():
        return param.dtype, param.device
    return None, "cpu"


def _prepare(batch: Tensor, dtype, device: str) -> Tensor:
    """Cast a floating batch to the model's dtype and move it to the model's device."""
    # (the array's dtype and the backend's device: no property call per batch)
    array_dtype = batch.data.dtype
    if dtype is not None and array_dtype.kind == "f" and array_dtype != dtype:
        batch = batch.astype(dtype)
    if batch.backend.device != device:
        batch = batch.to(device)
    return batch


def _batches(data, batch_size, shuffle, name, function, model):
    """A DataLoader for ``data`` (an ``(X, y)`` pair, or a DataLoader used as it is)."""
    if isinstance(data, DataLoader):
        if len(data) == 0:
            raise ValueError(f"{function}: {name} DataLoader yields no batches (empty data)")
        return data
    X, y = _xy_arrays(data, name, function)
    return _array_loader(X, y, batch_size, shuffle, model)


def _array_loader(X, y, batch_size, shuffle, model):
    """A DataLoader over numpy arrays, floating ones cast once to the model's dtype."""
    dtype, _ = _model_dtype_device(model)
    if dtype is not None:
        X, y = (a.astype(dtype) if a.dtype.kind == "f" and a.dtype != dtype else a
                for a in (X, y))
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle)


def _unpack(batch, function):
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"{function}: every batch must be an (inputs, targets) pair, got "
                         f"{type(batch).__name__}"
                         + (f" of length {len(batch)}" if isinstance(batch, (tuple, list))
                            else ""))
    return batch


def _scalar_loss(loss, function):
    if not isinstance(loss, Tensor) or loss.size != 1:
        shape = loss.shape if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"{function}: loss_fn must return a one-element Tensor (use "
                         f"reduction='mean' or 'sum'), got {shape}")
    return loss


def _run_eval(model, loss_fn, loader, metrics, dtype, device, prefix=""):
    """One pass without gradients in eval mode; the weighted-mean logs."""
    acc = _Accumulator(metrics, with_loss=loss_fn is not None)
    with no_grad():
        for batch in loader:
            xb, yb = _unpack(batch, "evaluate")
            xb, yb = _prepare(xb, dtype, device), _prepare(yb, dtype, device)
            output = model(xb)
            loss_value = (_scalar_loss(loss_fn(output, yb), "evaluate").item()
                          if loss_fn is not None else 0.0)
            acc.add(loss_value, output, yb, len(xb))
    return acc.logs(prefix)


# ---------------------------------------------------------------------------
# fit / evaluate / predict
# ---------------------------------------------------------------------------


def fit(model, loss_fn, optimizer, train_data, epochs: int = 1, batch_size: int = 32,
        validation_data=None, validation_split: float = 0.0, shuffle: bool = True,
        metrics=("accuracy",), clip_grad_norm: float | None = None, progress: bool = True,
        verbose: bool = False) -> History:
    """Train ``model`` with mini-batch gradient descent; return a :class:`History`.

    Args:
        model: an ``nn.Module`` (called as ``model(xb)``).
        loss_fn: ``loss_fn(output, target) -> scalar Tensor``, e.g. ``F.cross_entropy`` or
            ``nn.MSELoss()``.
        optimizer: an ``optim`` optimiser over the model's parameters.
        train_data: an ``(X, y)`` pair (numpy arrays or Tensors with the same first axis)
            or a ``DataLoader`` yielding ``(xb, yb)`` (then ``batch_size`` and ``shuffle``
            are the loader's own and are ignored here).
        epochs: number of passes over the training data (>= 1).
        batch_size: samples per gradient step (>= 1); the last batch may be smaller.
        validation_data: an ``(X, y)`` pair or a DataLoader evaluated after every epoch
            (eval mode, no gradients); gives ``val_loss`` and ``val_<metric>``.
        validation_split: fraction in [0, 1) of an ``(X, y)`` ``train_data`` held out for
            validation, taken from the *end* of the arrays before any shuffling (as Keras
            does). Ignored when ``validation_data`` is given.
        shuffle: reshuffle the training samples every epoch (reproducible under
            ``tl.manual_seed``).
        metrics: names (``"accuracy"``) or callables ``fn(output, target) -> float`` on
            numpy arrays; ``None`` or ``()`` computes the loss only.
        clip_grad_norm: if set, ``nn.utils.clip_grad_norm_(model.parameters(), value)``
            runs between ``backward`` and ``step``.
        progress: show a tqdm progress bar per epoch with the running loss and metrics.
        verbose: print one summary line per epoch (useful with ``progress=False`` in logs).

    The model is in training mode while it trains and in eval mode (with ``no_grad``) for
    validation; afterwards it is left in the mode it had before ``fit``.

    Raises:
        ValueError: mismatched X/y lengths, empty data, ``epochs`` or ``batch_size`` < 1,
            ``validation_split`` outside [0, 1), a loss that is not a single number.
    """
    name = "fit"
    epochs = _check_positive_int(epochs, "epochs", name)
    batch_size = _check_positive_int(batch_size, "batch_size", name)
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    metrics = _resolve_metrics(metrics)

    if isinstance(train_data, DataLoader):
        if validation_split and validation_data is None:
            raise ValueError("fit: validation_split needs (X, y) arrays, not a DataLoader; "
                             "pass validation_data instead")
        train_loader = _batches(train_data, batch_size, shuffle, "train_data", name, model)
    else:
        X, y = _xy_arrays(train_data, "train_data", name)
        if validation_split and validation_data is None:
            n_val = int(math.floor(len(X) * validation_split))
            if n_val < 1 or n_val >= len(X):
                raise ValueError(f"fit: validation_split={validation_split} of {len(X)} "
                                 f"samples leaves {n_val} for validation and {len(X) - n_val} "
                                 "for training; both need at least one")
            validation_data = (X[-n_val:], y[-n_val:])
            X, y = X[:-n_val], y[:-n_val]
        train_loader = _array_loader(X, y, batch_size, shuffle, model)
    val_loader = (None if validation_data is None else
                  _batches(validation_data, batch_size, False, "validation_data",
                           name, model))

    clip = None
    if clip_grad_norm is not None:
        from .nn.utils import clip_grad_norm_ as clip

    dtype, device = _model_dtype_device(model)
    # The loader fit builds from (X, y) arrays already yields CPU batches whose floats
    # have the model's dtype: nothing to cast or move per batch on the CPU.
    prepare = isinstance(train_data, DataLoader) or device != "cpu"
    steps = len(train_loader)
    history = History({"epochs": epochs, "steps": steps,
                       "batch_size": getattr(train_loader, "batch_size", batch_size)})
    was_training = model.training
    width = len(str(epochs))
    collecting = gc.isenabled()
    try:
        for epoch in range(epochs):
            model.train()
            acc = _Accumulator(metrics, with_loss=True)
            bar = _progress_bar(progress, steps, f"Epoch {epoch + 1:{width}d}/{epochs}")
            for batch in train_loader:
                xb, yb = _unpack(batch, name)
                if prepare:
                    xb, yb = _prepare(xb, dtype, device), _prepare(yb, dtype, device)
                # A step builds a graph of many objects that reference counting frees
                # when the step ends; a cyclic-GC pass in the middle of the step would
                # walk that whole live graph for nothing. Collect between steps instead.
                gc.disable()
                try:
                    optimizer.zero_grad()
                    output = model(xb)
                    loss = _scalar_loss(loss_fn(output, yb), name)
                    loss.backward()
                    if clip is not None:
                        clip(model.parameters(), clip_grad_norm)
                    optimizer.step()
                finally:
                    if collecting:
                        gc.enable()
                # (loss.item() without its size check: _scalar_loss made it)
                acc.add(loss.backend.item(loss.data), output.detach() if metrics else None, yb,
                        len(xb))
                if bar is not None:
                    bar.set_postfix(_format_logs(acc.logs()), refresh=False)
                    bar.update(1)
            logs = acc.logs()
            if val_loader is not None:
                model.eval()
                logs.update(_run_eval(model, loss_fn, val_loader, metrics, dtype, device,
                                      prefix="val_"))
            history._record(epoch, logs)
            if bar is not None:
                bar.set_postfix(_format_logs(logs), refresh=False)
                bar.close()
            if verbose:
                print(f"Epoch {epoch + 1:{width}d}/{epochs}: "
                      + ", ".join(f"{k}={v}" for k, v in _format_logs(logs).items()))
    finally:
        model.train(was_training)
    return history


def _format_logs(logs: dict) -> dict:
    return {key: f"{value:.4f}" for key, value in logs.items()}


def _progress_bar(progress: bool, total: int, description: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="batch", leave=True, file=sys.stderr,
                dynamic_ncols=True)


def evaluate(model, loss_fn, data, batch_size: int = 256, metrics=("accuracy",)) -> dict:
    """Loss and metrics of ``model`` on ``data`` (an ``(X, y)`` pair or a DataLoader).

    Runs in eval mode under ``no_grad`` (the model's mode is restored afterwards). Returns a
    dict such as ``{"loss": 0.12, "accuracy": 0.97}``; with ``loss_fn=None`` only the
    metrics. Values are means over samples (batch losses weighted by batch size).
    """
    batch_size = _check_positive_int(batch_size, "batch_size", "evaluate")
    metrics = _resolve_metrics(metrics)
    loader = _batches(data, batch_size, False, "data", "evaluate", model)
    dtype, device = _model_dtype_device(model)
    was_training = model.training
    model.eval()
    try:
        return _run_eval(model, loss_fn, loader, metrics, dtype, device)
    finally:
        model.train(was_training)


def predict(model, X, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``X`` (numpy array or Tensor) as one numpy array.

    Runs in eval mode under ``no_grad`` in batches of ``batch_size`` (the model's mode is
    restored afterwards). Class predictions are ``predict(model, X).argmax(axis=1)``.
    """
    batch_size = _check_positive_int(batch_size, "batch_size", "predict")
    X = _to_numpy(X)
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"predict: X must hold at least one sample, got shape {X.shape}")
    dtype, device = _model_dtype_device(model)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with no_grad():
            for start in range(0, len(X), batch_size):
                xb = _prepare(Tensor(X[start:start + batch_size]), dtype, device)
                outputs.append(model(xb).numpy())
    finally:
        model.train(was_training)
    return np.concatenate(outputs, axis=0)


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------


def _shapes(value):
    """The shape of a Tensor, or the nested list of shapes of a tuple/list of outputs."""
    if isinstance(value, Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return [_shapes(item) for item in value]
    return type(value).__name__


def _batch_free(a, b):
    """Merge the shapes of two probes with different batch sizes: differing axes -> None."""
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(None if m != n else m for m, n in zip(a, b))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [_batch_free(x, y) for x, y in zip(a, b)]
    return a


def _shape_text(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(item) for item in shape) + "]"
    return str(shape)


_PROBE_BATCHES = (2, 3)


def summary(model, input_shape, dtype=None, print_fn=print) -> str:
    """Print (and return) a Keras-style table of the model's layers.

    ``input_shape`` is the shape of ONE sample, without the batch axis (Keras' convention):
    ``summary(model, (64,))`` for the digits MLP, ``(1, 8, 8)`` for a CNN on digit images,
    ``(seq, features)`` for a batch-first recurrent net. Two forward passes on zeros, with
    batches of 2 and 3 samples (the model's dtype and device, eval mode, no gradients), find
    the output shape of every leaf module (a module without sub-modules); an axis whose
    size follows the batch is printed as ``None``, wherever it is (the batch axis of an
    RNN's ``h_n`` is the second). A layer called twice gets two rows and its parameters are
    counted once. Totals come from the model itself: ``Total params`` equals
    ``model.num_parameters()``; trainable are the parameters with ``requires_grad``.
    Buffers (e.g. batch-norm running statistics) are not parameters and are listed on a
    separate line when there are any.

    The layers are observed by temporarily replacing each leaf's ``forward`` with a wrapper
    that records the output; the originals are restored afterwards, even if the forward
    pass raises.
    """
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (int(input_shape),)
    input_shape = tuple(int(n) for n in input_shape)
    model_dtype, device = _model_dtype_device(model)
    dtype = dtype or model_dtype or "float32"

    calls = []  # one (module name, module, output shapes) per leaf call of the current probe
    patched = []
    for module_name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue  # containers: their leaves get the rows
        had_own = "forward" in module.__dict__
        original = module.forward

        def hooked(*args, _original=original, _module=module, _name=module_name, **kwargs):
            output = _original(*args, **kwargs)
            calls.append((_name or type(_module).__name__, _module, _shapes(output)))
            return output

        patched.append((module, had_own, original))
        object.__setattr__(module, "forward", hooked)

    was_training = model.training
    probes = []
    try:
        model.eval()
        for batch in _PROBE_BATCHES:
            calls.clear()
            x = Tensor(np.zeros((batch,) + input_shape, dtype=np.dtype(dtype)), device=device)
            with no_grad():
                output = model(x)
            probes.append((list(calls), _shapes(output)))
    finally:
        for module, had_own, original in patched:
            if had_own:
                object.__setattr__(module, "forward", original)
            else:
                object.__delattr__(module, "forward")
        model.train(was_training)

    (calls_a, output_a), (calls_b, output_b) = probes
    rows, counted = [], set()
    for index, (name, module, shape) in enumerate(calls_a):
        if index < len(calls_b) and calls_b[index][1] is module:
            shape = _batch_free(shape, calls_b[index][2])
        params = 0
        if id(module) not in counted:
            counted.add(id(module))
            params = module.num_parameters()
        rows.append((name, type(module).__name__, _shape_text(shape), params))
    output_text = _shape_text(_batch_free(output_a, output_b))

    total = model.num_parameters()
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    buffers = sum(b.size for b in model.buffers())
    header = ("Layer (type)", "Output Shape", "Param #")
    body = [(f"{name} ({kind})", shape, f"{params:,}") for name, kind, shape, params in rows]
    widths = [max(len(r[i]) for r in [header, *body]) + 3 for i in range(3)]
    widths[2] = max(widths[2], 10)
    line_width = sum(widths)

    def fmt(row):
        return (row[0].ljust(widths[0]) + row[1].ljust(widths[1])
                + row[2].rjust(widths[2] - 3))

    lines = [f'Model: "{type(model).__name__}"', "_" * line_width, fmt(header),
             "=" * line_width]
    for index, row in enumerate(body):
        lines.append(fmt(row))
        lines.append("_" * line_width if index < len(body) - 1 else "=" * line_width)
    if not body:
        lines.append("=" * line_width)
    lines += [f"Input shape: {(None,) + input_shape}", f"Output shape: {output_text}",
              f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    if buffers:
        lines.append(f"Buffers (not parameters, e.g. running statistics): {buffers:,}")
    lines.append("_" * line_width)
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
