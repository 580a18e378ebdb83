"""tl.sklearn: scikit-learn's own estimator checks, model selection, pickling, Dask."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.sklearn import NeuralNetClassifier, NeuralNetRegressor

# Small settings keep the ~110 checks to a few seconds; the defaults pass too.
FAST = dict(hidden_layer_sizes=(16,), epochs=30, optimizer="adam", lr=0.02, random_state=0)

# Checks that may not pass, and why. Empty: every check of scikit-learn passes. (Checks
# that scikit-learn itself skips, e.g. the pandas ones when pandas is not installed or
# the array-API one without SCIPY_ARRAY_API=1, are reported as skipped by pytest.)
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks([NeuralNetClassifier(**FAST), NeuralNetRegressor(**FAST)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = tl.datasets.load_digits()
    return X[:450].astype(np.float64), y[:450]


def test_params_are_stored_unmodified_and_validated_in_fit():
    sizes = [8, 4]
    clf = NeuralNetClassifier(hidden_layer_sizes=sizes, lr=-1)  # no error in __init__
    assert clf.get_params()["hidden_layer_sizes"] is sizes
    with pytest.raises(ValueError, match="lr"):
        clf.fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="activation"):
        NeuralNetClassifier(activation="swish").fit(np.zeros((4, 2)), [0, 1, 0, 1])
    assert clf.set_params(lr=0.5) is clf and clf.lr == 0.5


def test_classifier_learns_digits(digits):
    X, y = digits
    clf = NeuralNetClassifier(epochs=60, lr=0.5, random_state=0).fit(X[:350], y[:350])
    assert clf.score(X[:350], y[:350]) > 0.95 and clf.score(X[350:], y[350:]) > 0.75
    assert set(clf.classes_) == set(range(10)) and clf.n_features_in_ == 64
    proba = clf.predict_proba(X[350:])
    assert proba.shape == (100, 10) and np.allclose(proba.sum(axis=1), 1)
    assert len(clf.loss_curve_) == 60 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.history_.history["loss"] == clf.loss_curve_


def test_string_labels_and_custom_module(digits):
    X, y = digits
    labels = np.array(["even", "odd"])[y % 2]

    def factory(n_features, n_outputs):
        return nn.Sequential(nn.Linear(n_features, 12), nn.Tanh(), nn.Linear(12, n_outputs))

    clf = NeuralNetClassifier(module=factory, optimizer="adam", lr=0.01, epochs=20,
                              random_state=1).fit(X, labels)
    assert clf.model_[0].out_features == 12
    assert set(clf.predict(X)) <= {"even", "odd"} and clf.score(X, labels) > 0.8
    assert clf.decision_function(X).shape == (len(X),)  # binary: one score per sample


def test_regressor_single_and_multi_output():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 3))
    y = np.stack([X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])], axis=1)
    reg = NeuralNetRegressor(optimizer="adam", lr=0.01, epochs=60, random_state=0)
    assert reg.fit(X, y).predict(X).shape == (200, 2)
    assert reg.score(X, y) > 0.9
    assert reg.fit(X, y[:, 0]).predict(X).shape == (200,)


def test_random_state_reproducible_without_touching_global_rng(digits):
    X, y = digits
    tl.manual_seed(123)
    expected_next = tl.randn(3).numpy()
    tl.manual_seed(123)
    params = dict(hidden_layer_sizes=(10,), epochs=3, random_state=7)
    a = NeuralNetClassifier(**params).fit(X, y).predict_proba(X)
    b = NeuralNetClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    # the global generator is where it was: fitting did not consume or reseed it
    np.testing.assert_array_equal(tl.randn(3).numpy(), expected_next)


def test_pickle_round_trip(digits):
    X, y = digits
    clf = NeuralNetClassifier(hidden_layer_sizes=(10,), epochs=3, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.get_params() == clf.get_params()
    unfitted = pickle.loads(pickle.dumps(NeuralNetRegressor(lr=0.3)))
    assert unfitted.lr == 0.3


def test_pipeline_and_cross_val_score(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(epochs=15, lr=0.1,
                                                               random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    parallel = cross_val_score(clone(pipe), X, y, cv=3, n_jobs=2)
    np.testing.assert_array_equal(scores, parallel)


GRID = {"lr": [0.01, 0.3], "weight_decay": [1e-4, 1e-1]}


def _search(n_jobs, X, y):
    estimator = NeuralNetClassifier(hidden_layer_sizes=(20,), epochs=8, random_state=0)
    return GridSearchCV(estimator, GRID, cv=3, n_jobs=n_jobs).fit(X, y)


def test_grid_search_processes_match_serial(digits):
    X, y = digits
    serial, parallel = _search(1, X, y), _search(2, X, y)
    assert serial.best_params_ == parallel.best_params_
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  parallel.cv_results_["mean_test_score"])
    assert serial.best_params_["lr"] == 0.3


def test_grid_search_on_dask_cluster(digits):
    distributed = pytest.importorskip("dask.distributed")
    import joblib

    X, y = digits
    serial = _search(1, X, y)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        on_dask = _search(-1, X, y)
    assert on_dask.best_params_ == serial.best_params_
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  on_dask.cv_results_["mean_test_score"])


def test_pickle_with_a_network_class_defined_locally(digits):
    X, y = digits

    class LocalNet(nn.Module):  # not importable by name: pickled by value
        def __init__(self, n_in, n_out):
            super().__init__()
            self.hidden, self.out = nn.Linear(n_in, 8), nn.Linear(8, n_out)

        def forward(self, x):
            return self.out(self.hidden(x).relu())

    clf = NeuralNetClassifier(module=LocalNet, epochs=2, random_state=0).fit(X, y)
    clf.module = None  # the factory itself is the caller's business; the model travels
    copy = pickle.loads(pickle.dumps(clf))
    assert type(copy.model_).__name__ == "LocalNet"
    np.testing.assert_array_equal(copy.predict(X), clf.predict(X))
