"""``tl.sklearn``: tinygrad_lite networks as scikit-learn estimators.

:class:`NeuralNetClassifier` and :class:`NeuralNetRegressor` wrap a network trained by
the library's own loop (``tl.train.fit`` with an ``optim`` optimiser and an
``nn.functional`` loss) in the scikit-learn estimator interface, so the lecture notes'
hand-written grid search over learning rate and regularisation becomes::

    from sklearn.model_selection import GridSearchCV
    search = GridSearchCV(NeuralNetClassifier(epochs=50, random_state=0),
                          {"lr": [0.01, 0.1, 1.0], "weight_decay": [1e-4, 1e-2]},
                          cv=3, n_jobs=2)
    search.fit(X_train, y_train)

They follow scikit-learn's rules: ``__init__`` stores its arguments untouched and
validates nothing (``fit`` does), everything learned ends in ``_`` (``classes_``,
``n_features_in_``, ``model_``, ``history_``, ``loss_curve_``), and inputs are checked
with ``sklearn.utils.validation``. They pass ``check_estimator`` (see
``tests/tools/test_sklearn.py`` for the few checks that are skipped and why), work in a
``Pipeline``, ``cross_val_score`` and ``GridSearchCV`` and pickle, so ``n_jobs`` runs
them in worker processes.

**Randomness.** ``random_state=None`` draws the initial weights and the shuffling from
the library's global generator (as seeded by ``tl.manual_seed``). An int (or a numpy
``Generator`` / ``RandomState``) makes ``fit`` use a private generator for the duration
of the call: the same seed gives the same network in any process, and the global
generator is put back untouched afterwards, so fitting an estimator never changes what
later ``tl.randn`` calls return. Because that switch (like ``tl.no_grad``) is
process-wide, fits running in *threads* of one process take turns (a lock); use
process-based parallelism (joblib's default ``loky`` backend, or Dask) to train in
parallel.
"""

from __future__ import annotations

import importlib
import io
import pickle
import threading
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

__all__ = ["NeuralNetClassifier", "NeuralNetRegressor"]

_ACTIVATIONS = ("relu", "sigmoid", "logistic", "tanh", "identity", "leaky_relu", "elu")
_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

# Fits swap the library's global generator and rely on process-wide grad mode:
# one fit at a time per process.
_FIT_LOCK = threading.RLock()


def _validate_data(estimator, X, y=None, reset=True, **kwargs):
    if _sk_validate_data is not None:
        if y is None:
            return _sk_validate_data(estimator, X, reset=reset, **kwargs)
        return _sk_validate_data(estimator, X, y, reset=reset, **kwargs)
    if y is None:  # pragma: no cover
        return estimator._validate_data(X, reset=reset, **kwargs)
    return estimator._validate_data(X, y, reset=reset, **kwargs)  # pragma: no cover


# ------------------------------------------------------------------ seeding
def _generator_from(random_state):
    """The numpy Generator ``fit`` should draw from; None means the global one."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise ValueError(f"random_state must be None, an int, a numpy Generator or a "
                     f"RandomState, got {random_state!r}")


@contextmanager
def _seeded(random_state):
    """Run the block with the library's random draws coming from ``random_state``.

    Like ``tl.manual_seed(random_state)`` for the duration of the block, after which
    the previous global generator (and its position) is restored.
    """
    from .backend import random as library_random

    generator = _generator_from(random_state)
    with _FIT_LOCK:
        if generator is None:
            yield
            return
        previous = library_random._rng
        library_random._rng = generator
        try:
            yield
        finally:
            library_random._rng = previous


# ----------------------------------------------------------- the network
def _activation_module(name: str):
    from . import nn

    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "logistic": nn.Sigmoid,
            "tanh": nn.Tanh, "identity": nn.Identity, "leaky_relu": nn.LeakyReLU,
            "elu": nn.ELU}[name]()


def _mlp(n_features: int, n_outputs: int, hidden_layer_sizes, activation: str):
    """``Linear -> activation`` per hidden size, then a linear output layer."""
    from . import nn

    layers, width = [], n_features
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), _activation_module(activation)]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def _make_optimizer(spec, parameters, lr, weight_decay):
    from . import optim

    if callable(spec):  # an optim class or a factory(params, lr=..., weight_decay=...)
        return spec(parameters, lr=lr, weight_decay=weight_decay)
    classes = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
               "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
    return classes[spec](parameters, lr=lr, weight_decay=weight_decay)


# Pickling: a fitted model is stored as the bytes of a pickle in which every Tensor is
# replaced by (numpy data, requires_grad); this keeps an estimator picklable by any
# pickler (joblib's loky, Dask) whatever the Tensor classes' own pickling supports.
def _rebuild_tensor(cls, data, requires_grad, name):
    from .autograd.tensor import Tensor
    from .nn.parameter import Parameter

    if issubclass(cls, Parameter):
        tensor = Parameter(Tensor(data), requires_grad=requires_grad)
    else:
        tensor = Tensor(data, requires_grad=requires_grad)
    tensor.name = name
    return tensor


def _base_pickler():
    """cloudpickle's Pickler when installed (joblib uses it; a network class defined in
    a notebook or in ``__main__`` is then pickled by value), else the standard one."""
    for name in ("cloudpickle", "joblib.externals.cloudpickle"):
        try:
            return importlib.import_module(name).Pickler
        except ImportError:
            continue
    return pickle.Pickler  # pragma: no cover


def _dump_module(module) -> bytes:
    from .autograd.tensor import Tensor

    base = _base_pickler()

    class ModulePickler(base):
        def reducer_override(self, obj):
            if isinstance(obj, Tensor):
                return _rebuild_tensor, (type(obj), obj.numpy(), obj.requires_grad, obj.name)
            parent = getattr(super(), "reducer_override", None)
            return NotImplemented if parent is None else parent(obj)

    buffer = io.BytesIO()
    ModulePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(module)
    return buffer.getvalue()


# -------------------------------------------------------------- estimators
class _NeuralNetBase(BaseEstimator):
    """What the classifier and the regressor share: parameters, building, training."""

    def __init__(self, hidden_layer_sizes=(50,), activation="relu", optimizer="sgd", lr=0.01,
                 weight_decay=0.0, epochs=100, batch_size=100, random_state=None,
                 module=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state
        self.module = module

    # ------------------------------------------------------------ checking
    def _check_params(self) -> tuple:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral):
            sizes = (sizes,)
        sizes = tuple(sizes)
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0
                   for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got "
                             f"{self.hidden_layer_sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got "
                             f"{self.activation!r}")
        if not callable(self.optimizer) and self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS} or a callable "
                             f"optimizer(params, lr=..., weight_decay=...), got "
                             f"{self.optimizer!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, Real) or value < 0 or (name == "lr" and value == 0):
                kind = "positive" if name == "lr" else "non-negative"
                raise ValueError(f"{name} must be a {kind} number, got {value!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.module is not None and not callable(self.module):
            raise ValueError("module must be None or a factory module(n_features, n_outputs) "
                             f"-> nn.Module, got {self.module!r}")
        return sizes

    # ------------------------------------------------------------ training
    def _build(self, n_features: int, n_outputs: int, sizes):
        if self.module is not None:
            model = self.module(n_features, n_outputs)
            if not hasattr(model, "parameters"):
                raise TypeError(f"module(n_features, n_outputs) must return an nn.Module, got "
                                f"{type(model).__name__}")
            return model
        # float64, like scikit-learn's own MLP: predictions then do not depend on how
        # the samples are batched (float32 BLAS rounding does), and the cost is small.
        return _mlp(n_features, n_outputs, sizes, self.activation).double()

    def _train(self, X, targets, n_outputs: int, loss_fn):
        """Build a fresh network and train it on ``(X, targets)``; set fitted attributes."""
        from . import train

        sizes = self._check_params()
        with _seeded(self.random_state):
            model = self._build(X.shape[1], n_outputs, sizes)
            optimizer = _make_optimizer(self.optimizer, list(model.parameters()),
                                        float(self.lr), float(self.weight_decay))
            X = X.astype(_model_dtype(model), copy=False)
            history = train.fit(model, loss_fn, optimizer, (X, targets),
                                epochs=int(self.epochs),
                                batch_size=min(int(self.batch_size), len(X)),
                                shuffle=True, metrics=(), progress=False)
        model.eval()
        self.model_ = model
        self.history_ = history
        self.loss_curve_ = list(history.history["loss"])
        self.n_iter_ = int(self.epochs)
        return self

    def _forward(self, X) -> np.ndarray:
        """The network's raw outputs for validated ``X``, as float64 numpy."""
        from . import train

        check_is_fitted(self, "model_")
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        X = X.astype(_model_dtype(self.model_), copy=False)
        with _FIT_LOCK:
            out = train.predict(self.model_, X, batch_size=1024)
        return np.asarray(out, dtype=np.float64).reshape(len(X), -1)

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        state = super().__getstate__()
        if "model_" in state:
            state = dict(state)
            state["model_"] = _dump_module(state["model_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            state = dict(state)
            state["model_"] = pickle.loads(state["model_"])
        super().__setstate__(state)


def _require_y(y) -> None:
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")


def _model_dtype(model):
    for param in model.parameters():
        return param.dtype
    return np.dtype(np.float32)


class NeuralNetClassifier(ClassifierMixin, _NeuralNetBase):
    """A feed-forward network classifier trained with the library's loop.

    The network is ``Linear -> activation`` for each entry of ``hidden_layer_sizes``
    followed by a linear layer with one output per class, trained with cross-entropy on
    its logits (``F.cross_entropy``); ``predict_proba`` is the softmax of the logits.
    The network is float64, like scikit-learn's own ``MLPClassifier`` (a ``module``
    factory chooses its own dtype; inputs are cast to it).

    Args:
        hidden_layer_sizes: widths of the hidden layers (``()`` gives multinomial
            logistic regression).
        activation: ``"relu"``, ``"sigmoid"`` (alias ``"logistic"``), ``"tanh"``,
            ``"identity"``, ``"leaky_relu"`` or ``"elu"``.
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"adagrad"``, or a
            callable ``optimizer(params, lr=..., weight_decay=...)`` (e.g. ``optim.SGD``).
        lr: the learning rate (the notes' eta).
        weight_decay: L2 penalty added to the gradient (the notes' lambda).
        epochs: passes over the training data.
        batch_size: samples per gradient step (capped at the number of samples).
        random_state: None (global generator), an int, or a numpy Generator/RandomState;
            see the module docstring.
        module: ``None``, or a factory ``module(n_features, n_outputs) -> nn.Module``
            returning logits, used instead of the MLP described above.

    Attributes:
        classes_: the class labels, sorted.
        n_features_in_: number of input features seen in ``fit``.
        model_: the trained ``nn.Module`` (in eval mode).
        history_: the ``tl.train.History`` of the training run.
        loss_curve_: the mean training loss of every epoch.
        n_iter_: number of epochs run.
    """

    def fit(self, X, y):
        """Train a fresh network on ``X`` (n_samples, n_features) and labels ``y``."""
        from .nn import functional as F

        _require_y(y)
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        return self._train(X, encoded.astype(np.int64), len(self.classes_), F.cross_entropy)

    def decision_function(self, X) -> np.ndarray:
        """The network's logits, shape (n_samples, n_classes).

        With two classes, scikit-learn's convention: one score per sample, the logit of
        ``classes_[1]`` minus that of ``classes_[0]`` (positive means ``classes_[1]``).
        """
        logits = self._forward(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits), shape (n_samples, n_classes)."""
        logits = self._forward(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        logits = self._forward(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample."""
        logits = self._forward(X)  # first: raises NotFittedError before fit
        return self.classes_[np.argmax(logits, axis=1)]


class NeuralNetRegressor(RegressorMixin, _NeuralNetBase):
    """A feed-forward network regressor trained with mean squared error.

    Same parameters as :class:`NeuralNetClassifier`; the output layer has one unit per
    target (``y`` may be 1-D or ``(n_samples, n_targets)``, and ``predict`` returns the
    same shape). Targets are used as given (scale them, e.g. with
    ``TransformedTargetRegressor``, when they are large).

    Attributes:
        n_features_in_, model_, history_, loss_curve_, n_iter_: as for the classifier.
        n_outputs_: number of targets.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Train a fresh network on ``X`` (n_samples, n_features) and targets ``y``."""
        from .nn import functional as F

        _require_y(y)
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True,
                              y_numeric=True)
        self._y_1d = y.ndim == 1
        targets = y.reshape(len(y), -1)
        self.n_outputs_ = targets.shape[1]
        return self._train(X, targets.astype(np.float64), self.n_outputs_, F.mse_loss)

    def predict(self, X) -> np.ndarray:
        """The predicted targets: shape (n_samples,) if ``y`` was 1-D in ``fit``."""
        out = self._forward(X)
        return out[:, 0] if self._y_1d else out
