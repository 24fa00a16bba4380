"""The weight average: its recurrence, and its file (round trip, refusals)."""

import pytest
import torch

from showo_sdk.errors import CheckpointError
from showo_sdk.train.ema import EMA_FILE, WeightEMA


def _linear(seed: int, width: int = 3) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(width, 2)


def test_update_is_the_exponential_average():
    model = _linear(0)
    w0 = model.weight.detach().clone()
    ema = WeightEMA(model, 0.75)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update()
    w1 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.mul_(-2.0)
    ema.update()
    w2 = model.weight.detach().clone()
    want = 0.75 * (0.75 * w0 + 0.25 * w1) + 0.25 * w2
    torch.testing.assert_close(ema.shadow["weight"], want, rtol=0, atol=1e-6)
    ema.copy_to_model()
    torch.testing.assert_close(model.weight.detach(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1, 1.5])
def test_decay_outside_open_interval_is_refused(decay):
    with pytest.raises(ValueError, match="ema decay must be in"):
        WeightEMA(_linear(0), decay)


def test_file_round_trip_and_refusals(tmp_path):
    saved = WeightEMA(_linear(1), 0.9)
    saved.save(tmp_path)
    other = WeightEMA(_linear(2), 0.9)
    other.load(tmp_path)
    assert all(torch.equal(other.shadow[k], saved.shadow[k]) for k in saved.shadow)

    with pytest.raises(CheckpointError, match="does not match the model|is torch.float32"):
        WeightEMA(_linear(3, width=4), 0.9).load(tmp_path)  # another model's shapes
    with pytest.raises(CheckpointError, match="missing"):
        other.load(tmp_path / "elsewhere")
    data = (tmp_path / EMA_FILE).read_bytes()
    (tmp_path / EMA_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read"):
        other.load(tmp_path)
