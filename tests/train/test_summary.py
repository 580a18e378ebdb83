"""tl.summary: the Keras-style layer table."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn


def digits_mlp():
    return nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))


def test_summary_rows_and_totals(capsys):
    model = digits_mlp()
    text = tl.summary(model, (64,))
    assert capsys.readouterr().out.strip() == text.strip()
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith(("0 (", "1 (", "2 ("))]
    assert len(rows) == 3
    assert rows[0].split()[:2] == ["0", "(Linear)"] and "(None, 50)" in rows[0]
    assert rows[0].rstrip().endswith("3,250")
    assert "(Sigmoid)" in rows[1] and rows[1].rstrip().endswith(" 0")
    assert "(None, 10)" in rows[2] and rows[2].rstrip().endswith("510")
    assert f"Total params: {model.num_parameters():,}" in text
    assert model.num_parameters() == 3760
    assert "Trainable params: 3,760" in text and "Non-trainable params: 0" in text


def test_summary_is_the_top_level_function():
    from tinygrad_lite.train import summary

    assert tl.summary is summary


def test_summary_int_shape_and_nested_model_names():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(8, 6), nn.ReLU())
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(self.features(x))

    text = tl.summary(Net(), 8, print_fn=None)
    assert "features.0 (Linear)" in text and "features.1 (ReLU)" in text
    assert "head (Linear)" in text and "(None, 2)" in text
    assert 'Model: "Net"' in text


def test_summary_non_trainable_and_buffers():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    text = tl.summary(model, (4,), print_fn=None)
    total = model.num_parameters()
    assert f"Total params: {total:,}" in text
    assert "Non-trainable params: 15" in text
    assert f"Trainable params: {total - 15:,}" in text
    assert "Buffers" in text


def test_shared_layer_counted_once():
    layer = nn.Linear(5, 5)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(self.layer(x))

    text = tl.summary(Twice(), (5,), print_fn=None)
    rows = [line for line in text.splitlines() if line.startswith("Twice")
            or line.startswith("layer (")]
    assert len(rows) == 2
    assert rows[0].rstrip().endswith("30") and rows[1].rstrip().endswith(" 0")
    assert "Total params: 30" in text


def test_summary_restores_forward_and_mode_even_on_error():
    model = digits_mlp()
    with pytest.raises(ValueError):
        tl.summary(model, (63,), print_fn=None)  # wrong width: Linear raises
    for module in model.modules():
        assert "forward" not in module.__dict__
    assert model.training
    # and the model still works normally
    assert model(tl.Tensor(np.zeros((2, 64), dtype=np.float32))).shape == (2, 10)


def test_summary_keeps_eval_mode_and_leaves_no_graph():
    model = digits_mlp().eval()
    tl.summary(model, (64,), print_fn=None)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_summary_finds_the_batch_axis_of_nested_outputs():
    LSTM = getattr(nn, "LSTM", None)
    if LSTM is None:
        from tinygrad_lite.nn.rnn import LSTM

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = LSTM(1, 8)
            self.fc = nn.Linear(8, 1)

        def forward(self, x):
            output, _ = self.rnn(x)
            return self.fc(output[:, -1])

    model = Net()
    text = tl.summary(model, (5, 1), print_fn=None)
    # output (batch, seq, hidden); h_n and c_n (layers, batch, hidden)
    assert "[(None, 5, 8), [(1, None, 8), (1, None, 8)]]" in text
    assert "Input shape: (None, 5, 1)" in text and "Output shape: (None, 1)" in text
    assert f"Total params: {model.num_parameters():,}" in text
