"""The demo command: `python -m tinygrad_lite demo --quick` trains every model and writes
its figures; `--help` documents every option."""

import subprocess
import sys

import pytest

from tinygrad_lite.__main__ import main

EXPECTED_FIGURES = {"mlp_history.png", "mlp_graph.png", "cnn_history.png", "lstm_history.png",
                    "lstm_pairing.png", "grid_heatmap.png"}


def test_quick_demo_trains_every_model_and_writes_its_figures(tmp_path, capsys):
    assert main(["demo", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    written = {p.name for p in tmp_path.iterdir()}
    assert EXPECTED_FIGURES <= written
    assert all((tmp_path / name).stat().st_size > 5_000 for name in EXPECTED_FIGURES)
    # the quick runs still learn: read the value column of the results table
    values = {}
    for line in printed.splitlines():
        for name in ("digits MLP", "digits CNN", "2-layer LSTM"):
            if line.startswith(name):
                values[name] = float(_value_column(line))
    assert values["digits MLP"] > 0.9
    assert values["digits CNN"] > 0.85
    assert values["2-layer LSTM"] < 0.266  # beats repeating the last value


def _value_column(line: str) -> str:
    """The results table's value: the number before the time column ('1.4s')."""
    tokens = line.split()
    for index, token in enumerate(tokens):
        if token.endswith("s") and token[:-1].replace(".", "", 1).isdigit():
            return tokens[index - 1]
    raise AssertionError(f"no value in {line!r}")


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help_explains_the_options(argv):
    result = subprocess.run([sys.executable, "-m", "tinygrad_lite", *argv],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    if "demo" in argv:
        for option in ("--quick", "--out", "--no-progress", "--seed", "--skip"):
            assert option in result.stdout
