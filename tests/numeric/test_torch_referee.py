"""PyTorch as the referee: gradflow's forward pass and BPTT against nn.RNN / LSTM / GRU and autograd.

Every module PyTorch offers for the three cells (tanh and relu RNN, LSTM,
GRU; one or two layers; one or two directions; with and without biases) is
read with ``from_torch``; gradflow's trajectory must equal ``output``,
``h_n``, ``c_n``, and ``gf.bptt`` must equal ``param.grad``, ``x.grad``,
``h0.grad``, ``c0.grad`` from autograd.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import numpy as np
import pytest
import torch

import gradflow as gf
from gradflow.numeric.interop import (
    UnsupportedModuleError,
    final_states,
    from_torch,
    gradients_to_torch,
    initial_from_torch,
    output_to_torch,
    sequence_from_torch,
    states_to_torch,
    upstream_from_torch,
)

M, N, T, B = 3, 4, 5, 2
FORWARD_TOL, GRADIENT_TOL = 1e-12, 1e-10

KINDS = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
    "lstm": torch.nn.LSTM,
    "gru": torch.nn.GRU,
}
STEP_KINDS = {
    "rnn_tanh": lambda **kw: torch.nn.RNNCell(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNNCell(nonlinearity="relu", **kw),
    "lstm": torch.nn.LSTMCell,
    "gru": torch.nn.GRUCell,
}
CASES = list(itertools.product(KINDS, (1, 2), (False, True), (True, False)))


def case_id(case: tuple[Any, ...]) -> str:
    kind, layers, both, bias = case
    return f"{kind}-L{layers}-{'bi' if both else 'uni'}-{'bias' if bias else 'nobias'}"


def relative_error(a: Any, b: Any) -> float:
    """max|a - b| / max(max|b|, tiny)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny))


def numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def build(kind: str, layers: int, both: bool, bias: bool, *, batch_first: bool = False, **kw: Any) -> Any:
    torch.manual_seed(1000 * layers + 10 * both + bias + len(kind))
    module = KINDS[kind](
        input_size=M,
        hidden_size=N,
        num_layers=layers,
        bidirectional=both,
        bias=bias,
        batch_first=batch_first,
        **kw,
    )
    return module.double()


def draw_inputs(module: Any, kind: str, *, batch_first: bool = False) -> tuple[torch.Tensor, ...]:
    """A random input and nonzero initial states, all requiring gradients."""
    slots = module.num_layers * (2 if module.bidirectional else 1)
    x = torch.randn((B, T, M) if batch_first else (T, B, M), dtype=torch.float64, requires_grad=True)
    h0 = (0.5 * torch.randn(slots, B, N, dtype=torch.float64)).requires_grad_()
    if kind != "lstm":
        return x, h0
    c0 = torch.randn(slots, B, N, dtype=torch.float64).requires_grad_()
    return x, h0, c0


def run_torch(
    module: Any, kind: str, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor | None = None
) -> Any:
    if kind == "lstm":
        output, (h_n, c_n) = module(x, (h0, c0))
        return output, h_n, c_n
    output, h_n = module(x, h0)
    return output, h_n, None


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_equals_torch(case: tuple[Any, ...]) -> None:
    kind, layers, both, bias = case
    module = build(kind, layers, both, bias)
    x, h0, *rest = draw_inputs(module, kind)
    c0 = rest[0] if rest else None
    with torch.no_grad():
        output, h_n, c_n = run_torch(module, kind, x, h0, c0)
    cell, params = from_torch(module)
    initial = initial_from_torch(module, h0, c0)
    trajectory = gf.simulate(cell, params, sequence_from_torch(module, x), initial)
    assert relative_error(output_to_torch(module, trajectory), numpy(output)) <= FORWARD_TOL
    h_final, c_final = states_to_torch(module, final_states(trajectory))
    assert relative_error(h_final, numpy(h_n)) <= FORWARD_TOL
    if kind == "lstm":
        assert relative_error(c_final, numpy(c_n)) <= FORWARD_TOL
    else:
        assert c_final is None and c_n is None


def check_gradients(module: Any, kind: str, *, final_term: bool, batch_first: bool = False) -> None:
    """loss = sum(output * R) (+ sum(h_n * S) + sum(c_n * Q)): bptt against autograd."""
    x, h0, *rest = draw_inputs(module, kind, batch_first=batch_first)
    c0 = rest[0] if rest else None
    module.zero_grad()
    output, h_n, c_n = run_torch(module, kind, x, h0, c0)
    R = torch.randn_like(output)
    S = torch.randn_like(h_n) if final_term else None
    Q = torch.randn_like(c_n) if final_term and c_n is not None else None
    loss = (output * R).sum()
    if S is not None:
        loss = loss + (h_n * S).sum()
    if Q is not None:
        loss = loss + (c_n * Q).sum()
    loss.backward()

    cell, params = from_torch(module)
    inputs = sequence_from_torch(module, x)
    upstream = upstream_from_torch(module, R, S, Q)
    grads = gf.bptt(cell, params, inputs, upstream, initial=initial_from_torch(module, h0, c0))
    expected = {name: p.grad for name, p in module.named_parameters()}
    got = gradients_to_torch(module, grads)
    assert list(got) == list(expected)
    for name, grad in expected.items():
        assert relative_error(got[name], numpy(grad)) <= GRADIENT_TOL, name
    x_grad = grads.inputs["x"].swapaxes(0, 1) if batch_first else grads.inputs["x"]
    assert relative_error(x_grad, numpy(x.grad)) <= GRADIENT_TOL
    h0_grad, c0_grad = states_to_torch(module, grads.initial)
    assert relative_error(h0_grad, numpy(h0.grad)) <= GRADIENT_TOL
    if c0 is not None:
        assert relative_error(c0_grad, numpy(c0.grad)) <= GRADIENT_TOL


@pytest.mark.parametrize("final_term", [False, True], ids=["output", "output+final"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients_equal_autograd(case: tuple[Any, ...], final_term: bool) -> None:
    kind, layers, both, bias = case
    check_gradients(build(kind, layers, both, bias), kind, final_term=final_term)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_first(kind: str) -> None:
    module = build(kind, 2, True, True, batch_first=True)
    x, h0, *rest = draw_inputs(module, kind, batch_first=True)
    with torch.no_grad():
        output, _, _ = run_torch(module, kind, x, h0, *rest)
    cell, params = from_torch(module)
    inputs = sequence_from_torch(module, x)
    assert inputs.shape == (T, B, M)
    trajectory = gf.simulate(cell, params, inputs, initial_from_torch(module, h0, *rest))
    assert relative_error(output_to_torch(module, trajectory), numpy(output)) <= FORWARD_TOL
    check_gradients(module, kind, final_term=True, batch_first=True)


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_single_step_cells(kind: str) -> None:
    """nn.RNNCell, LSTMCell, GRUCell looped over time are the plain cells."""
    torch.manual_seed(7)
    module = STEP_KINDS[kind](input_size=M, hidden_size=N).double()
    x = torch.randn(T, B, M, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, N, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, N, dtype=torch.float64, requires_grad=True) if kind == "lstm" else None
    h, c, hs = h0, c0, []
    for step in x.unbind(0):
        if kind == "lstm":
            h, c = module(step, (h, c))
        else:
            h = module(step, h)
        hs.append(h)
    output = torch.stack(hs)
    R = torch.randn_like(output)
    (output * R).sum().backward()

    cell, params = from_torch(module)
    initial = initial_from_torch(module, h0, c0)
    trajectory = gf.simulate(cell, params, sequence_from_torch(module, x), initial)
    assert relative_error(output_to_torch(module, trajectory), numpy(output)) <= FORWARD_TOL
    grads = gf.bptt(
        cell, params, sequence_from_torch(module, x), upstream_from_torch(module, R), initial=initial
    )
    got = gradients_to_torch(module, grads)
    for name, p in module.named_parameters():
        assert relative_error(got[name], numpy(p.grad)) <= GRADIENT_TOL, name
    assert relative_error(grads.inputs["x"], numpy(x.grad)) <= GRADIENT_TOL
    h0_grad, c0_grad = states_to_torch(module, grads.initial)
    assert h0_grad.shape == (B, N)
    assert relative_error(h0_grad, numpy(h0.grad)) <= GRADIENT_TOL
    if c0 is not None:
        assert relative_error(c0_grad, numpy(c0.grad)) <= GRADIENT_TOL


def test_float32_weights_and_dtype() -> None:
    torch.manual_seed(3)
    module = torch.nn.LSTM(M, N, num_layers=2)  # float32
    cell, params = from_torch(module)
    assert all(p.dtype == np.float64 for p in params.values())
    assert from_torch(module, dtype="float32")[1]["layer1.W_f"].dtype == np.float32
    x = torch.randn(T, B, M)
    with torch.no_grad():
        output, _ = module(x)
    trajectory = gf.simulate(cell, params, sequence_from_torch(module, x))
    assert relative_error(output_to_torch(module, trajectory), numpy(output)) <= 1e-5


def test_parameters_are_copies_with_the_cell_names() -> None:
    module = build("gru", 2, True, False)
    cell, params = from_torch(module)
    assert list(params) == list(cell.params)
    assert all(params[name].shape == tuple(int(d) for d in shape) for name, shape in cell.params.items())
    assert not np.any(params["layer2.bwd.b_Wh"])  # bias=False: zero biases
    before = params["layer1.fwd.W_z"].copy()
    with torch.no_grad():
        module.weight_hh_l0.add_(1.0)
    assert np.array_equal(params["layer1.fwd.W_z"], before)


def test_dropout_is_ignored_in_eval_mode() -> None:
    module = build("lstm", 2, False, True, dropout=0.5).eval()
    x, h0, c0 = draw_inputs(module, "lstm")
    with torch.no_grad():
        output, _, _ = run_torch(module, "lstm", x, h0, c0)
    cell, params = from_torch(module)
    trajectory = gf.simulate(cell, params, sequence_from_torch(module, x), initial_from_torch(module, h0, c0))
    assert relative_error(output_to_torch(module, trajectory), numpy(output)) <= FORWARD_TOL


def test_unbatched_sequence() -> None:
    module = build("rnn_tanh", 1, True, True)
    x = torch.randn(T, M, dtype=torch.float64)
    h0 = torch.randn(2, N, dtype=torch.float64)
    with torch.no_grad():
        output, h_n = module(x, h0)
    cell, params = from_torch(module)
    trajectory = gf.simulate(cell, params, sequence_from_torch(module, x), initial_from_torch(module, h0))
    assert relative_error(output_to_torch(module, trajectory)[:, 0], numpy(output)) <= FORWARD_TOL
    assert (
        relative_error(states_to_torch(module, final_states(trajectory))[0][:, 0], numpy(h_n)) <= FORWARD_TOL
    )


def test_projection_is_unsupported() -> None:
    with pytest.raises(UnsupportedModuleError, match="proj_size=2"):
        from_torch(torch.nn.LSTM(M, N, proj_size=2))


@pytest.mark.parametrize("module", [torch.nn.Linear(3, 4), torch.nn.Transformer, "lstm"], ids=repr)
def test_other_modules_are_unsupported(module: Any) -> None:
    with pytest.raises(UnsupportedModuleError, match=r"gradflow maps torch\.nn\.RNN") as info:
        from_torch(module)
    assert isinstance(info.value, gf.GradflowError) and isinstance(info.value, ValueError)


def test_missing_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(gf.BackendUnavailableError, match=r'pip install "gradflow\[torch\]"'):
        from_torch(object())


def test_state_shapes_are_checked() -> None:
    lstm, gru = build("lstm", 2, False, True), build("gru", 1, False, True)
    with pytest.raises(gf.ShapeError, match=r"num_layers\*num_directions = 2"):
        initial_from_torch(lstm, np.zeros((1, B, N)), np.zeros((2, B, N)))
    with pytest.raises(gf.ShapeError, match="no cell state"):
        initial_from_torch(gru, np.zeros((1, B, N)), np.zeros((1, B, N)))
    with pytest.raises(gf.ShapeError, match=r"no value of state layer2\.c;"):
        states_to_torch(lstm, {"layer1.h": 0, "layer2.h": 0, "layer1.c": 0})
    with pytest.raises(gf.ShapeError, match="no gradient for U_z, b_z, W_r"):
        gradients_to_torch(gru, {"W_z": np.zeros((N, N))})
    with pytest.raises(gf.GradflowError, match="dtype"):
        from_torch(gru, dtype="int8")
