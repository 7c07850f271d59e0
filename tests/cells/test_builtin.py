"""Built-in cells: the parameter table of docs/architecture.md, structure, value semantics, and what the equations mean.

The semantic referee expands one step of each cell into components (sympy
``as_explicit``) and compares it, at random rational points, with the
componentwise formula of the cell's docstring written out by hand below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sympy as sp

import gradflow as gf
from gradflow.cells import Cell, Elementwise, Signal, size_symbol, t
from gradflow.cells.activations import CATALOGUE, as_activation
from gradflow.errors import CellDefinitionError

cells = gf.cells
N, M, K = size_symbol("n"), size_symbol("m"), size_symbol("k")

# --- docs/architecture.md's table, written out by hand ------------------------------


def elman_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"W_h": (n, n), "W_x": (n, m), "b": (n,)}


def jordan_params(n: Any, m: Any, k: Any) -> dict[str, tuple[Any, ...]]:
    return {"W_h": (n, k), "W_x": (n, m), "b": (n,), "W_y": (k, n), "b_y": (k,)}


def lstm_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {
        "W_f": (n, n), "U_f": (n, m), "b_f": (n,),
        "W_i": (n, n), "U_i": (n, m), "b_i": (n,),
        "W_o": (n, n), "U_o": (n, m), "b_o": (n,),
        "W_c": (n, n), "U_c": (n, m), "b_c": (n,),
    }  # fmt: skip


def lstm1997_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {
        "W_i": (n, n), "U_i": (n, m), "b_i": (n,),
        "W_o": (n, n), "U_o": (n, m), "b_o": (n,),
        "W_c": (n, n), "U_c": (n, m), "b_c": (n,),
    }  # fmt: skip


def lstm_peephole_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {**lstm_params(n, m), "p_f": (n,), "p_i": (n,), "p_o": (n,)}


def lstm1997_peephole_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {**lstm1997_params(n, m), "p_i": (n,), "p_o": (n,)}


def gru_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {
        "W_z": (n, n), "U_z": (n, m), "b_z": (n,),
        "W_r": (n, n), "U_r": (n, m), "b_r": (n,),
        "W_h": (n, n), "U_h": (n, m), "b_h": (n,),
    }  # fmt: skip


def gru_reset_after_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {**gru_params(n, m), "b_Wh": (n,)}


def leaky_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"W_h": (n, n), "W_x": (n, m), "b": (n,), "alpha": ()}


def skip_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"W_h": (n, n), "W_d": (n, n), "W_x": (n, m), "b": (n,)}


def skip_only_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"W_d": (n, n), "W_x": (n, m), "b": (n,)}


def ctrnn_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"W_h": (n, n), "W_x": (n, m), "b": (n,), "tau": (), "dt": ()}


def indrnn_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"u": (n,), "W_x": (n, m), "b": (n,)}


def minimal_params(n: Any, m: Any, k: Any = None) -> dict[str, tuple[Any, ...]]:
    return {"U_h": (n, n), "U_z": (n, n), "b": (n,), "W_x": (n, m)}


H = (("state", "h"),)
LSTM_ORDER = (
    ("intermediate", "f"), ("intermediate", "i"), ("intermediate", "o"),
    ("intermediate", "c_tilde"), ("state", "c"), ("state", "h"),
)  # fmt: skip
LSTM1997_ORDER = (
    ("intermediate", "i"), ("intermediate", "o"), ("intermediate", "c_tilde"), ("state", "c"), ("state", "h"),
)  # fmt: skip
# with peepholes o reads c[t], so it moves after the cell update
LSTM_PEEPHOLE_ORDER = (
    ("intermediate", "f"), ("intermediate", "i"), ("intermediate", "c_tilde"),
    ("state", "c"), ("intermediate", "o"), ("state", "h"),
)  # fmt: skip
LSTM1997_PEEPHOLE_ORDER = (
    ("intermediate", "i"), ("intermediate", "c_tilde"), ("state", "c"), ("intermediate", "o"), ("state", "h"),
)  # fmt: skip
GRU_ORDER = (("intermediate", "z"), ("intermediate", "r"), ("intermediate", "h_tilde"), ("state", "h"))


def hn(n: Any, k: Any) -> dict[str, Any]:
    return {"h": n}


def hc(n: Any, k: Any) -> dict[str, Any]:
    return {"h": n, "c": n}


def y(n: Any, k: Any) -> dict[str, Any]:
    return {"y": k}


# id, constructor (taking size keywords), expected params, states, name, order, delays
BUILTINS: list[
    tuple[str, Callable[..., Cell], Callable[..., dict], Callable[..., dict], str, tuple, dict]
] = [
    ("elman", lambda **s: cells.elman(**s), elman_params, hn, "elman", H, {"h": (1,)}),
    ("elman-relu", lambda **s: cells.elman("relu", **s), elman_params, hn, "elman", H, {"h": (1,)}),
    (
        "jordan",
        lambda **s: cells.jordan(**s),
        jordan_params,
        y,
        "jordan",
        (("intermediate", "h"), ("state", "y")),
        {"y": (1,)},
    ),
    ("lstm", lambda **s: cells.lstm(**s), lstm_params, hc, "lstm", LSTM_ORDER, {"h": (1,), "c": (1,)}),
    (
        "lstm-no-forget",
        lambda **s: cells.lstm(forget_gate=False, **s),
        lstm1997_params,
        hc,
        "lstm1997",
        LSTM1997_ORDER,
        {"h": (1,), "c": (1,)},
    ),
    (
        "lstm-peephole",
        lambda **s: cells.lstm(peephole=True, **s),
        lstm_peephole_params,
        hc,
        "lstm_peephole",
        LSTM_PEEPHOLE_ORDER,
        {"h": (1,), "c": (1,)},
    ),
    (
        "lstm-no-forget-peephole",
        lambda **s: cells.lstm(forget_gate=False, peephole=True, **s),
        lstm1997_peephole_params,
        hc,
        "lstm1997_peephole",
        LSTM1997_PEEPHOLE_ORDER,
        {"h": (1,), "c": (1,)},
    ),
    ("gru", lambda **s: cells.gru(**s), gru_params, hn, "gru", GRU_ORDER, {"h": (1,)}),
    (
        "gru-reset-after",
        lambda **s: cells.gru(reset_after=True, **s),
        gru_reset_after_params,
        hn,
        "gru_reset_after",
        GRU_ORDER,
        {"h": (1,)},
    ),
    ("leaky", lambda **s: cells.leaky(**s), leaky_params, hn, "leaky", H, {"h": (1,)}),
    ("leaky-0.9", lambda **s: cells.leaky(0.9, **s), elman_params, hn, "leaky", H, {"h": (1,)}),
    ("skip", lambda **s: cells.skip(**s), skip_params, hn, "skip2", H, {"h": (1, 2)}),
    (
        "skip-3-only",
        lambda **s: cells.skip(delay=3, unit_connection=False, **s),
        skip_only_params,
        hn,
        "skip3_only",
        H,
        {"h": (3,)},
    ),
    ("ctrnn", lambda **s: cells.ctrnn(**s), ctrnn_params, hn, "ctrnn", H, {"h": (1,)}),
    ("ctrnn-numbers", lambda **s: cells.ctrnn(2, 0.1, **s), elman_params, hn, "ctrnn", H, {"h": (1,)}),
    ("indrnn", lambda **s: cells.indrnn(**s), indrnn_params, hn, "indrnn", H, {"h": (1,)}),
    (
        "minimal",
        lambda **s: cells.minimal(**s),
        minimal_params,
        hn,
        "minimal",
        (("intermediate", "z"), ("intermediate", "u"), ("state", "h")),
        {"h": (1,)},
    ),
]
IDS = [case[0] for case in BUILTINS]


def build(ctor: Callable[..., Cell], uses_k: bool, **sizes: Any) -> Cell:
    if not uses_k:
        sizes.pop("k", None)
    return ctor(**sizes)


def uses_k(case_id: str) -> bool:
    return case_id == "jordan"


# --- structure -------------------------------------------------------------------


@pytest.mark.parametrize(("case", "ctor", "params", "states", "name", "order", "delays"), BUILTINS, ids=IDS)
def test_symbolic_cell_matches_the_table(case, ctor, params, states, name, order, delays) -> None:
    cell = ctor()
    assert cell.name == name
    assert dict(cell.params) == params(N, M, K)
    assert dict(cell.states) == states(N, K)
    assert dict(cell.inputs) == {"x": M}
    assert cell.order == order
    assert {state: cell.delays(state) for state in cell.states} == delays
    assert not cell.is_concrete
    assert set(cell.size_symbols) == ({N, M, K} if uses_k(case) else {N, M})
    assert cell.backward == frozenset()
    assert cell.emits == next(iter(states(N, K)))
    assert cell.references and cell.description


@pytest.mark.parametrize(("case", "ctor", "params", "states", "name", "order", "delays"), BUILTINS, ids=IDS)
@pytest.mark.parametrize(
    "sizes", [{"n": 3, "m": 2, "k": 4}, {"n": 1, "m": 5, "k": 1}], ids=["3-2-4", "1-5-1"]
)
def test_concrete_sizes_from_constructor_and_with_sizes(
    case, ctor, params, states, name, order, delays, sizes
) -> None:
    sized = sizes if uses_k(case) else {k: v for k, v in sizes.items() if k != "k"}
    from_constructor = ctor(**sized)
    from_with_sizes = ctor().with_sizes(**sized)
    expected = params(sizes["n"], sizes["m"], sizes["k"])
    for cell in (from_constructor, from_with_sizes):
        assert cell.is_concrete
        assert cell.size_symbols == ()
        assert dict(cell.params) == expected
        assert all(isinstance(size, sp.Integer) for shape in cell.params.values() for size in shape)
        assert dict(cell.states) == states(sizes["n"], sizes["k"])
        assert dict(cell.inputs) == {"x": sizes["m"]}
        assert cell.order == order
    assert from_constructor == from_with_sizes
    assert hash(from_constructor) == hash(from_with_sizes)


@pytest.mark.parametrize(("case", "ctor", "params", "states", "name", "order", "delays"), BUILTINS, ids=IDS)
def test_with_sizes_is_deterministic_and_partial(case, ctor, params, states, name, order, delays) -> None:
    cell = ctor()
    assert cell.with_sizes(n=2, m=3) == cell.with_sizes(n=2, m=3)
    assert cell.with_sizes(n=2, m=3) != cell.with_sizes(n=3, m=2)
    partial = cell.with_sizes(n=4)
    assert dict(partial.params) == params(4, M, K)
    assert partial.with_sizes(m=2) == cell.with_sizes(n=4, m=2)
    assert cell.with_sizes() == cell
    assert cell == ctor()  # with_sizes leaves the original alone


@pytest.mark.parametrize(("case", "ctor", "params", "states", "name", "order", "delays"), BUILTINS, ids=IDS)
def test_cells_are_immutable(case, ctor, params, states, name, order, delays) -> None:
    cell = ctor()
    before = str(cell)
    for attribute in ("name", "_states", "params", "new_attribute"):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(cell, attribute, None)
    with pytest.raises(TypeError):
        cell.params["W_x"] = ()  # type: ignore[index]
    with pytest.raises(TypeError):
        cell.updates["x"] = None  # type: ignore[index]
    assert str(cell) == before


@pytest.mark.parametrize(("case", "ctor", "params", "states", "name", "order", "delays"), BUILTINS, ids=IDS)
def test_repr_and_str_show_the_equations(case, ctor, params, states, name, order, delays) -> None:
    cell = ctor()
    assert repr(cell).startswith(f"<Cell {name!r}: states ")
    for param, shape in params(N, M, K).items():
        assert f"{param}(" + ", ".join(map(str, shape)) + ")" in repr(cell)
    text = str(cell)
    assert text.splitlines()[0] == repr(cell)
    sections = {"intermediate": "intermediate", "state": "update", "output": "output"}
    written = {(e.section, e.target): e.text for e in cell.equations}
    lines = text.splitlines()[1:]
    assert len(lines) == len(order)
    for line, (kind, target) in zip(lines, cell.order, strict=True):  # evaluation order
        shown = f"{target}[t]" if kind == "state" else target
        assert line == f"  {shown} = {written[(sections[kind], target)]}"
    assert "W_x @ x" in text or "U_" in text


def test_str_of_elman_is_the_equation_as_written() -> None:
    assert str(cells.elman()).splitlines()[1] == "  h[t] = tanh(W_h @ h + W_x @ x + b)"
    assert str(cells.elman().updates["h"]) == "tanh(W_h*h[t - 1] + W_x*x[t] + b)"


# --- value semantics ---------------------------------------------------------------


@pytest.mark.parametrize(("case", "ctor", "params", "states", "name", "order", "delays"), BUILTINS, ids=IDS)
def test_same_definition_twice_is_equal(case, ctor, params, states, name, order, delays) -> None:
    first, second = ctor(), ctor()
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    assert first != "not a cell"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (lambda: cells.elman("tanh"), lambda: cells.elman("relu")),
        (lambda: cells.elman("swish"), lambda: cells.elman("silu")),
        (lambda: cells.elman(n=3), lambda: cells.elman(n=4)),
        (lambda: cells.lstm(), lambda: cells.lstm(peephole=True)),
        (lambda: cells.lstm(), lambda: cells.lstm(gate_activation="hard_tanh")),
        (lambda: cells.gru(), lambda: cells.gru(reset_after=True)),
        (lambda: cells.leaky(0.5), lambda: cells.leaky(0.9)),
        (lambda: cells.leaky(), lambda: cells.leaky("beta")),
        (lambda: cells.skip(2), lambda: cells.skip(3)),
        (lambda: cells.ctrnn(1, 0.1), lambda: cells.ctrnn(1, 0.2)),
        (lambda: cells.jordan("tanh", "tanh"), lambda: cells.jordan("tanh", "sigmoid")),
        (lambda: cells.minimal(), lambda: cells.minimal("relu")),
    ],
)
def test_different_definitions_are_unequal(first, second) -> None:
    assert first() != second()
    assert len({first(), second()}) == 2


# --- activations in built-in cells ---------------------------------------------------


@pytest.mark.parametrize("activation", sorted(CATALOGUE))
def test_elman_with_every_catalogue_activation(activation: str) -> None:
    cell = cells.elman(activation)
    update = cell.updates["h"]
    assert isinstance(update, Elementwise)
    assert update.activation == as_activation(activation)
    assert dict(cell.params) == elman_params(N, M)
    assert dict(cell.activations) == {}  # catalogue names need no declaration
    assert cell.with_sizes(n=2, m=3) == cells.elman(activation, n=2, m=3)


def test_elman_with_user_activations() -> None:
    cubic = sp.Lambda(sp.Symbol("v"), sp.Symbol("v") ** 3)
    cell = cells.elman(as_activation(cubic, name="cubic"))
    assert cell.updates["h"].activation.name == "cubic"
    assert cell == cells.elman(as_activation(cubic, name="cubic"))
    leaky = cells.elman(gf.cells.activations.leaky_relu(0.2))
    assert leaky.updates["h"].activation == gf.cells.activations.leaky_relu(0.2)
    assert leaky != cells.elman("leaky_relu")


def test_lstm_activations_go_where_documented() -> None:
    cell = cells.lstm(activation="relu", cell_activation="identity", gate_activation="hard_tanh")
    for gate in ("f", "i", "o"):
        assert cell.intermediates[gate].activation.name == "hard_tanh"
    assert cell.intermediates["c_tilde"].activation.name == "relu"
    (activated,) = cell.updates["h"].atoms(Elementwise)
    assert activated.activation.name == "identity"


def test_jordan_activations_go_where_documented() -> None:
    cell = cells.jordan("relu", "sigmoid")
    assert cell.intermediates["h"].activation.name == "relu"
    assert cell.updates["y"].activation.name == "sigmoid"


def test_leaky_alpha_number_or_parameter() -> None:
    assert "alpha" not in cells.leaky(0.25).params
    assert cells.leaky("beta").params["beta"] == ()
    assert cells.leaky(sp.Symbol("beta")) == cells.leaky("beta")
    assert cells.leaky(0.25) == cells.leaky(sp.Rational(1, 4))


def test_ctrnn_numbers_are_exact() -> None:
    numeric = cells.ctrnn(2, 0.1)
    assert not {"tau", "dt"} & set(numeric.params)
    assert sp.Rational(1, 20) in numeric.updates["h"].atoms(sp.Rational)


def test_skip_reads_the_delayed_state() -> None:
    for delay in (2, 3, 7):
        cell = cells.skip(delay=delay)
        lags = {s.lag for s in cell.updates["h"].atoms(Signal) if s.name == "h"}
        assert lags == {-1, -delay}
        assert cell.delays("h") == (1, delay)
        assert cells.skip(delay=delay, unit_connection=False).delays("h") == (delay,)


def test_delays_of_an_unknown_state() -> None:
    with pytest.raises(CellDefinitionError, match="has no state 'q'"):
        cells.elman().delays("q")


# --- what the equations mean: explicit expansion vs. hand-written components -------------


def tanh(v: Any) -> Any:
    return sp.tanh(v)


def sigmoid(v: Any) -> Any:
    return 1 / (1 + sp.exp(-v))


def relu(v: Any) -> Any:
    return sp.Max(0, v)


def affine(P, S, W: str, U: str | None, b: str, state: str, i: int, lag: int = -1) -> Any:
    """Σ_j W[i,j] s_j + Σ_j U[i,j] x_j + b_i, written out."""
    s, x = S(state, lag), S("x", 0)
    total = sum(P(W)[i, j] * s[j] for j in range(s.rows)) + P(b)[i]
    if U is not None:
        total += sum(P(U)[i, j] * x[j] for j in range(x.rows))
    return total


def ref_elman(P, S, n, act=tanh):
    return {"h": [act(affine(P, S, "W_h", "W_x", "b", "h", i)) for i in range(n)]}


def ref_jordan(P, S, n):
    k = S("y", -1).rows
    hidden = [tanh(affine(P, S, "W_h", "W_x", "b", "y", i)) for i in range(n)]
    return {
        "h": hidden,
        "y": [tanh(sum(P("W_y")[i, j] * hidden[j] for j in range(n)) + P("b_y")[i]) for i in range(k)],
    }


def ref_lstm(P, S, n, forget=True, peephole=False):
    h, c, x = S("h", -1), S("c", -1), S("x", 0)

    def gate(g, cell_value=None):
        out = []
        for i in range(n):
            pre = sum(P(f"W_{g}")[i, j] * h[j] for j in range(n))
            pre += sum(P(f"U_{g}")[i, j] * x[j] for j in range(x.rows)) + P(f"b_{g}")[i]
            if cell_value is not None:
                pre += P(f"p_{g}")[i] * cell_value[i]
            out.append(pre)
        return out

    peep = c if peephole else None
    f = [sigmoid(v) for v in gate("f", peep)] if forget else [1] * n
    i_ = [sigmoid(v) for v in gate("i", peep)]
    candidate = [tanh(v) for v in gate("c")]
    c_new = [f[r] * c[r] + i_[r] * candidate[r] for r in range(n)]
    o = [sigmoid(v) for v in gate("o", c_new if peephole else None)]
    return {"c": c_new, "h": [o[r] * tanh(c_new[r]) for r in range(n)], "o": o, "c_tilde": candidate}


def ref_gru(P, S, n, reset_after=False):
    h, x = S("h", -1), S("x", 0)
    z = [sigmoid(affine(P, S, "W_z", "U_z", "b_z", "h", i)) for i in range(n)]
    r = [sigmoid(affine(P, S, "W_r", "U_r", "b_r", "h", i)) for i in range(n)]
    candidate = []
    for i in range(n):
        inputs = sum(P("U_h")[i, j] * x[j] for j in range(x.rows)) + P("b_h")[i]
        if reset_after:
            recurrent = r[i] * (sum(P("W_h")[i, j] * h[j] for j in range(n)) + P("b_Wh")[i])
        else:
            recurrent = sum(P("W_h")[i, j] * r[j] * h[j] for j in range(n))
        candidate.append(tanh(recurrent + inputs))
    return {"h": [z[i] * h[i] + (1 - z[i]) * candidate[i] for i in range(n)], "z": z, "r": r}


def ref_leaky(P, S, n, alpha=None):
    a = P("alpha") if alpha is None else alpha
    h = S("h", -1)
    return {"h": [a * h[i] + (1 - a) * tanh(affine(P, S, "W_h", "W_x", "b", "h", i)) for i in range(n)]}


def ref_skip(P, S, n, delay=2, unit=True):
    out = []
    for i in range(n):
        pre = affine(P, S, "W_d", "W_x", "b", "h", i, lag=-delay)
        if unit:
            pre += sum(P("W_h")[i, j] * S("h", -1)[j] for j in range(n))
        out.append(tanh(pre))
    return {"h": out}


def ref_ctrnn(P, S, n, tau=None, dt=None):
    tau = P("tau") if tau is None else tau
    dt = P("dt") if dt is None else dt
    h, x = S("h", -1), S("x", 0)
    out = []
    for i in range(n):
        drive = sum(P("W_h")[i, j] * tanh(h[j]) for j in range(n))
        drive += sum(P("W_x")[i, j] * x[j] for j in range(x.rows)) + P("b")[i]
        out.append(h[i] + dt / tau * (-h[i] + drive))
    return {"h": out}


def ref_indrnn(P, S, n):
    h, x = S("h", -1), S("x", 0)
    return {
        "h": [
            relu(P("u")[i] * h[i] + sum(P("W_x")[i, j] * x[j] for j in range(x.rows)) + P("b")[i])
            for i in range(n)
        ]
    }


def ref_minimal(P, S, n):
    h, x = S("h", -1), S("x", 0)
    z = [tanh(sum(P("W_x")[i, j] * x[j] for j in range(x.rows))) for i in range(n)]
    u = [
        sigmoid(
            sum(P("U_h")[i, j] * h[j] for j in range(n))
            + sum(P("U_z")[i, j] * z[j] for j in range(n))
            + P("b")[i]
        )
        for i in range(n)
    ]
    return {"h": [u[i] * h[i] + (1 - u[i]) * z[i] for i in range(n)], "z": z, "u": u}


SEMANTICS = [
    ("elman", lambda **s: cells.elman(**s), ref_elman),
    ("elman-relu", lambda **s: cells.elman("relu", **s), lambda P, S, n: ref_elman(P, S, n, relu)),
    ("jordan", lambda **s: cells.jordan(k=2, **s), ref_jordan),
    ("lstm", lambda **s: cells.lstm(**s), ref_lstm),
    (
        "lstm-no-forget",
        lambda **s: cells.lstm(forget_gate=False, **s),
        lambda P, S, n: ref_lstm(P, S, n, forget=False),
    ),
    (
        "lstm-peephole",
        lambda **s: cells.lstm(peephole=True, **s),
        lambda P, S, n: ref_lstm(P, S, n, peephole=True),
    ),
    (
        "lstm-no-forget-peephole",
        lambda **s: cells.lstm(forget_gate=False, peephole=True, **s),
        lambda P, S, n: ref_lstm(P, S, n, forget=False, peephole=True),
    ),
    ("gru", lambda **s: cells.gru(**s), ref_gru),
    (
        "gru-reset-after",
        lambda **s: cells.gru(reset_after=True, **s),
        lambda P, S, n: ref_gru(P, S, n, reset_after=True),
    ),
    ("leaky", lambda **s: cells.leaky(**s), ref_leaky),
    ("leaky-0.9", lambda **s: cells.leaky(0.9, **s), lambda P, S, n: ref_leaky(P, S, n, sp.Rational(9, 10))),
    ("skip", lambda **s: cells.skip(**s), ref_skip),
    (
        "skip-3-only",
        lambda **s: cells.skip(delay=3, unit_connection=False, **s),
        lambda P, S, n: ref_skip(P, S, n, 3, False),
    ),
    ("ctrnn", lambda **s: cells.ctrnn(**s), ref_ctrnn),
    (
        "ctrnn-numbers",
        lambda **s: cells.ctrnn(2, 0.1, **s),
        lambda P, S, n: ref_ctrnn(P, S, n, 2, sp.Rational(1, 10)),
    ),
    ("indrnn", lambda **s: cells.indrnn(**s), ref_indrnn),
    ("minimal", lambda **s: cells.minimal(**s), ref_minimal),
]


@pytest.mark.parametrize(("case", "ctor", "reference"), SEMANTICS, ids=[s[0] for s in SEMANTICS])
@pytest.mark.parametrize(("n", "m"), [(2, 2), (3, 1)], ids=["n2-m2", "n3-m1"])
def test_equations_mean_what_the_docstrings_say(
    case, ctor, reference, n, m, explicit_step, random_point, matches
) -> None:
    cell = ctor(n=n, m=m)
    expanded = explicit_step(cell)
    point = random_point(cell, expanded.values())
    expected = reference(point.P, point.S, n)
    for name, values in expected.items():
        matches(expanded[name], point, values, f"{case}: {name}")
    # the expansion reads nothing computed within the step
    for matrix in expanded.values():
        for signal in matrix.atoms(Signal):
            assert signal.role in ("state", "input")
            assert signal.role == "input" or signal.lag < 0


@pytest.mark.parametrize("activation", sorted(CATALOGUE))
def test_elman_expansion_for_every_activation(activation: str, explicit_step, random_point, matches) -> None:
    cell = cells.elman(activation, n=2, m=2)
    expanded = explicit_step(cell)
    point = random_point(cell, expanded.values())
    act = as_activation(activation)
    if activation == "sigma":
        sigma = sp.Function("sigma", real=True)
        expected = ref_elman(point.P, point.S, 2, sigma)
    else:
        expected = ref_elman(point.P, point.S, 2, act)
    matches(expanded["h"], point, expected["h"], activation)


def test_expansion_reads_previous_states_at_the_right_times(explicit_step) -> None:
    expanded = explicit_step(cells.skip(delay=3, n=2, m=1))
    times = {s.time for s in expanded["h"].atoms(Signal) if s.name == "h"}
    assert times == {t - 1, t - 3}
    lstm = explicit_step(cells.lstm(peephole=True, n=1, m=1))
    assert {(s.name, s.time) for s in lstm["h"].atoms(Signal)} == {("h", t - 1), ("c", t - 1), ("x", t)}


# --- copying ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_cells_survive_pickle_and_copy(how: str) -> None:
    import copy
    import pickle

    cell = cells.lstm(peephole=True)
    clone = {
        "pickle": lambda c: pickle.loads(pickle.dumps(c)),
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
    }[how](cell)
    assert clone == cell
    assert hash(clone) == hash(cell)
