"""``gf.analyze`` and ``gradflow analyze MODEL`` on real trained models, saved each of the three ways.

Small nn.RNN, nn.LSTM and nn.GRU models are trained here (seeded, CPU, a few seconds) on a
long-distance task: report the sign of the first input step's first feature at the last step.
Their per-step input gradients are checked against torch autograd, their regimes against the
measured chains.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import gradflow as gf
from gradflow.cli import main
from gradflow.errors import GradflowError, ShapeError, UsageError
from gradflow.report.loading import infer_architecture, load_recurrent, parse_arch

T, M, HIDDEN = 12, 3, 6


class Classifier(torch.nn.Module):
    """A recurrent layer and a linear head on its last output (batch-first, as models often are)."""

    def __init__(self, kind: str, layers: int = 1, bidirectional: bool = False):
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(
            M, HIDDEN, num_layers=layers, bidirectional=bidirectional, batch_first=True
        )
        self.head = torch.nn.Linear(HIDDEN * (2 if bidirectional else 1), 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def task(rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = rng.normal(size=(batch, T, M))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(x[:, :1, 0] > 0, dtype=torch.float32)


def train(kind: str, **options) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(kind, **options)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(0)
    for _ in range(60):
        x, y = task(rng, 32)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def models():
    return {
        "RNN": train("RNN"),
        "LSTM": train("LSTM", layers=2),
        "GRU": train("GRU", bidirectional=True),
    }


@pytest.fixture(scope="module")
def inputs():
    return task(np.random.default_rng(1), 4)[0].double().numpy()  # (B, T, M), batch-first


def autograd_input_gradient(model: Classifier, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The referee: ∂L/∂x for L = Σ output·grad, by torch autograd in float64 (batch-first)."""
    rnn = type(model.rnn)(
        M,
        HIDDEN,
        num_layers=model.rnn.num_layers,
        bidirectional=model.rnn.bidirectional,
        batch_first=True,
    ).double()
    rnn.load_state_dict({k: v.double() for k, v in model.rnn.state_dict().items()})
    xt = torch.tensor(x, requires_grad=True)
    out, _ = rnn(xt)
    (out * torch.tensor(grad)).sum().backward()
    return xt.grad.numpy()


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_input_gradients_equal_autograd(models, inputs, kind):
    model = models[kind]
    directions = 2 if model.rnn.bidirectional else 1
    grad = np.random.default_rng(2).normal(size=(inputs.shape[0], T, HIDDEN * directions))
    found = gf.analyze(model, inputs, loss_grad=grad)
    ours = np.swapaxes(np.asarray(found.gradients.inputs["x"]), 0, 1)  # (B, T, M)
    theirs = autograd_input_gradient(model, inputs, grad)
    assert np.linalg.norm(ours - theirs) <= 1e-10 * np.linalg.norm(theirs)
    layers = model.rnn.num_layers * directions
    assert len(found.layers) == layers
    assert found.where == "rnn"
    for layer in found.layers:
        assert layer.comparison.holds  # actual <= bound <= gamma bound at every lag
        logs, lags = np.asarray(layer.chain.log_spectral)[1:], np.arange(1, T + 1, dtype=float)
        centred = lags - lags.mean()
        slopes = centred @ (logs - logs.mean(axis=0)) / (centred @ centred)
        assert layer.regime.rate == pytest.approx(float(slopes.mean()), rel=1e-9, abs=1e-12)
        assert (layer.regime.label == "vanishing") == (layer.regime.rate < -1e-3)
    assert model.rnn.batch_first and next(model.parameters()).dtype == torch.float32  # the model is untouched


def test_summary_in_plain_words(models, inputs):
    found = gf.analyze(models["LSTM"], inputs)
    summary = found.summary()
    assert summary[0].startswith("layer 1: the gradient ")
    assert any("% of forget gates (f) are below 0.5" in line for line in summary)
    assert summary[-1].startswith(
        "Through the whole model, the gradient reaching the first input step is 10^"
    )
    tau = found.layers[0].time_constants
    f = np.asarray(found.layers[0].trajectory["f"]).mean(axis=(0, 1))
    np.testing.assert_allclose(tau, -1 / np.log(f))
    stats = found.layers[0].gates["f"]
    assert stats.below_half == pytest.approx(
        float((np.asarray(found.layers[0].trajectory["f"]) < 0.5).mean())
    )


@pytest.fixture(scope="module")
def saved(models, tmp_path_factory):
    """The GRU and the LSTM saved as TorchScript, a pickled module and a state_dict."""
    folder = tmp_path_factory.mktemp("models")
    files = {}
    for kind in ("GRU", "LSTM"):
        model = models[kind]
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; models saved with it still exist
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(model).save(str(folder / f"{kind}-script.pt"))
        torch.save(model, folder / f"{kind}-pickled.pt")
        torch.save(model.state_dict(), folder / f"{kind}-weights.pt")
        files[kind] = folder
    torch.save(models["RNN"].state_dict(), folder / "RNN-weights.pt")
    return folder


@pytest.mark.parametrize("how", ["script", "pickled", "weights"])
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_every_way_of_saving_gives_the_same_module(models, saved, kind, how):
    name, module = load_recurrent(saved / f"{kind}-{how}.pt")
    assert name == "rnn" and type(module).__name__ == kind
    for key, value in models[kind].rnn.state_dict().items():
        assert torch.equal(module.state_dict()[key], value.double())


def test_the_command_writes_the_diagnosis(models, saved, inputs, tmp_path, capsys):
    np.save(tmp_path / "x.npy", inputs)
    out = tmp_path / "diagnosis"
    argv = ["analyze", str(saved / "LSTM-script.pt"), "--inputs", str(tmp_path / "x.npy"), "--batch-first"]
    status = main([*argv, "--out", str(out)])
    text, err = capsys.readouterr()
    assert status == 0, err
    assert "lstm(input=3, hidden=6, layers=2)" in text and "the gradient" in text and f"wrote {out}/" in text
    index = (out / "index.md").read_text(encoding="utf-8")
    assert index.startswith("# Gradient flow in lstm(input=3, hidden=6, layers=2) (`rnn`)")
    for figure in (
        "chain-norms.png",
        "input-gradient.png",
        "lyapunov.png",
        "gates-layer-1.png",
        "gates-layer-2.png",
    ):
        assert (out / "figures" / figure).read_bytes()[:4] == b"\x89PNG"
        assert f"](figures/{figure})" in index
    # the same numbers as the Python API on the same inputs
    found = gf.analyze(models["LSTM"], inputs)
    assert f"{found.layers[0].regime.rate:+.4f}" in index
    status = main([*argv, "--out", str(out)])
    assert status == 2 and "exists; pass --force" in capsys.readouterr().err


def test_state_dicts_with_and_without_arch(saved, tmp_path, capsys):
    assert infer_architecture(
        {
            k.removeprefix("rnn."): v
            for k, v in torch.load(saved / "GRU-weights.pt").items()
            if k.startswith("rnn.")
        },
        "x",
    ) == parse_arch("gru(input=3, hidden=6, bidirectional)")
    with pytest.raises(UsageError, match="do not say its nonlinearity"):
        load_recurrent(saved / "RNN-weights.pt")
    _, module = load_recurrent(saved / "RNN-weights.pt", arch="rnn(input=3, hidden=6, nonlinearity=tanh)")
    assert module.nonlinearity == "tanh"
    with pytest.raises(UsageError, match="needs"):
        load_recurrent(saved / "RNN-weights.pt", arch="rnn(input=3, hidden=7)")
    with pytest.raises(UsageError, match="do not fit"):
        load_recurrent(saved / "LSTM-weights.pt", arch="lstm(input=3, hidden=6)")  # it has 2 layers
    out = tmp_path / "d"
    status = main(
        [
            "analyze",
            str(saved / "RNN-weights.pt"),
            "--arch",
            "rnn(input=3, hidden=6)",
            "-T",
            "8",
            "-B",
            "2",
            "--out",
            str(out),
        ]
    )
    assert status == 0 and (out / "index.md").exists()
    capsys.readouterr()


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("transformer(input=3)", "must look like"),
        ("lstm(hidden=4)", "input must be a positive integer"),
        ("lstm(input=3, hidden=4, colour=red)", "unknown colour"),
        ("lstm(input=3, hidden=4, nonlinearity=relu)", "for an rnn only"),
        ("gru(input=3, hidden=4, bidirectional=yes)", "True or False"),
    ],
)
def test_bad_arch(arch, message):
    with pytest.raises(UsageError, match=message):
        parse_arch(arch)


def test_bad_files_and_inputs(models, saved, tmp_path, capsys):
    (tmp_path / "notes.pt").write_text("not a model", encoding="utf-8")
    for path, message in [
        (tmp_path / "missing.pt", "no such file"),
        (tmp_path / "notes.pt", "cannot load it"),
    ]:
        status = main(["analyze", str(path), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert status == 2 and message in err and err.count("\n") == 1
    with pytest.raises(ShapeError, match="size = 3"):
        gf.analyze(models["GRU"], np.zeros((T, 2, 5)))
    with pytest.raises(ShapeError, match="NaN"):
        gf.analyze(models["GRU"], np.full((2, T, 3), np.nan))
    with pytest.raises(ShapeError, match="loss_grad"):
        gf.analyze(models["GRU"], np.zeros((2, T, 3)), loss_grad=np.zeros((2, T, 6)))  # the output is 12 wide
    with pytest.raises(UsageError, match=r"holds no torch\.nn\.RNN"):
        gf.analyze(torch.nn.Linear(3, 2))
    with pytest.raises(UsageError, match="T must be"):
        gf.analyze(models["GRU"], T=1)
    with pytest.raises(GradflowError, match=r"takes a torch\.nn\.Module or a path"):
        gf.analyze(42)
    two = torch.nn.ModuleDict({"a": torch.nn.GRU(3, 4), "b": torch.nn.LSTM(3, 4)})
    with pytest.raises(UsageError, match="several recurrent layers"):
        gf.analyze(two)
    assert gf.analyze(two, name="b", T=6, B=1).model == "lstm(input=3, hidden=4, layers=1)"
