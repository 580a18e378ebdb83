"""The examples' --quick runs finish and write their figures."""

import importlib
import os

import pytest


@pytest.mark.parametrize("name, figures", [
    ("digits_mlp", ["digits_mlp_history.png"]),
    ("digits_gridsearch", ["digits_grid_notes_training_accuracy.png",
                           "digits_grid_notes_test_accuracy.png",
                           "digits_grid_keras_training_accuracy.png",
                           "digits_grid_keras_test_accuracy.png"]),
    ("breast_cancer", ["breast_cancer_training_accuracy.png",
                       "breast_cancer_testing_accuracy.png"]),
])
def test_example_quick_run(tmp_path, capsys, name, figures):
    module = importlib.import_module(name)
    result = module.main(["--quick", "--out", str(tmp_path)])
    assert isinstance(result, dict)
    for figure in figures:
        path = tmp_path / figure
        assert path.exists() and path.stat().st_size > 1000, figure
    assert "saved" in capsys.readouterr().out


def test_digits_mlp_quick_results(tmp_path):
    import digits_mlp

    result = digits_mlp.main(["--quick", "--out", str(tmp_path)])
    assert result["grad_diff"] <= 1e-10 and result["weight_diff"] <= 1e-10
    assert result["test_accuracy"] > 0.8
    assert os.listdir(tmp_path) == ["digits_mlp_history.png"]


def test_example_runs_as_a_script(tmp_path):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "breast_cancer.py")
    completed = subprocess.run([sys.executable, script, "--quick", "--out", str(tmp_path)],
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "MPLBACKEND": "Agg"})
    assert completed.returncode == 0, completed.stderr
    assert "best:" in completed.stdout
    assert (tmp_path / "breast_cancer_testing_accuracy.png").exists()
