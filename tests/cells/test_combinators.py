"""Combinators: stacked and bidirectional cells, their names, sizes, times and meaning."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import sympy as sp

import gradflow as gf
from gradflow.cells import Cell, Concat, Signal, size_symbol, t
from gradflow.errors import CellDefinitionError

cells = gf.cells
N, M = size_symbol("n"), size_symbol("m")


def unprefixed(
    expr: sp.Basic, prefix: str, inputs: Mapping[Signal, Signal] | None = None, flip: bool = False
) -> sp.Basic:
    """``expr`` with ``prefix`` stripped from every name, some signals replaced, and time optionally mirrored."""
    mapping: dict[sp.Basic, sp.Basic] = dict(inputs or {})
    for symbol in expr.atoms(sp.MatrixSymbol):
        if symbol.name.startswith(prefix):
            mapping[symbol] = sp.MatrixSymbol(symbol.name[len(prefix) :], *symbol.shape)
    for symbol in expr.atoms(sp.Symbol):
        if symbol.name.startswith(prefix):
            mapping[symbol] = sp.Symbol(symbol.name[len(prefix) :], real=True)
    for signal in expr.atoms(Signal):
        if signal in mapping:
            continue
        name = signal.name[len(prefix) :] if signal.name.startswith(prefix) else signal.name
        time = t - signal.lag if flip and signal.role == "state" else signal.time
        mapping[signal] = Signal(name, signal.size, time, signal.role)
    return expr.xreplace(mapping)


def assert_layer_is(
    combined: Cell,
    prefix: str,
    layer: Cell,
    inputs: Mapping[Signal, Signal] | None = None,
    flip: bool = False,
) -> None:
    """Every equation of ``layer`` appears in ``combined`` under ``prefix`` (renamed back, it is identical)."""
    for kind, name in layer.order:
        theirs = combined.expression(kind, prefix + name)
        assert unprefixed(theirs, prefix, inputs, flip) == layer.expression(kind, name), (kind, name)
    for param, shape in layer.params.items():
        assert combined.params[prefix + param] == shape
    for state, size in layer.states.items():
        assert combined.states[prefix + state] == size


def read_from_below(cell: Cell, below: str) -> dict[Signal, Signal]:
    """The signal of the layer below, standing for the layer's own input x[t]."""
    size = cell.signal(below).shape[0]
    return {cell.signal(below): Signal("x", size, t, "input")}


# --- stack -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layers",
    [
        ["elman", "elman"],
        ["lstm", "lstm"],
        ["gru", "gru"],
        ["elman", "lstm", "gru"],
        ["gru", "elman", "lstm"],
        ["lstm", "lstm", "lstm"],
    ],
    ids="-".join,
)
@pytest.mark.parametrize("concrete", [False, True], ids=["symbolic", "concrete"])
def test_stack_names_sizes_and_equations(layers: list[str], concrete: bool) -> None:
    parts = [getattr(cells, name)() for name in layers]
    if concrete:
        parts = [parts[0].with_sizes(n=3, m=2)] + [p.with_sizes(n=3) for p in parts[1:]]
    deep = cells.stack(parts)
    assert deep.name == "stack(" + ", ".join(p.name for p in parts) + ")"
    assert dict(deep.inputs) == {"x": 2 if concrete else M}
    assert deep.emits == f"layer{len(parts)}.h"
    assert deep.is_concrete == concrete
    expected_states = {f"layer{k}.{s}": size for k, p in enumerate(parts, 1) for s, size in p.states.items()}
    assert dict(deep.states) == expected_states
    assert len(deep.params) == sum(len(p.params) for p in parts)
    assert all(name.startswith(("layer1.", "layer2.", "layer3.")) for name in deep.params)
    n = 3 if concrete else N
    for k, part in enumerate(parts, 1):
        prefix = f"layer{k}."
        if k == 1:
            assert_layer_is(deep, prefix, part)
        else:
            resized = getattr(cells, layers[k - 1])(n=n, m=n)
            assert_layer_is(deep, prefix, resized, read_from_below(deep, f"layer{k - 1}.h"))
            # layer k reads layer k-1 at time t, never x
            reads = {
                s
                for e in (deep.expression(*node) for node in deep.order if node[1].startswith(prefix))
                for s in e.atoms(Signal)
            }
            assert Signal(f"layer{k - 1}.h", n, t, "state") in reads
            assert not any(s.role == "input" for s in reads)
    # layer k's equations come after layer k-1's state updates
    position = {node: i for i, node in enumerate(deep.order)}
    for k in range(2, len(parts) + 1):
        assert position[("state", f"layer{k - 1}.h")] < min(
            i for (kind, name), i in position.items() if name.startswith(f"layer{k}.")
        )


def test_stack_matches_symbolic_input_size_to_the_layer_below() -> None:
    deep = cells.stack([cells.elman(n=3, m=2), cells.lstm(n=4)])
    assert deep.params["layer2.U_f"] == (4, 3)
    assert deep.params["layer2.W_f"] == (4, 4)
    assert deep.is_concrete
    named = cells.stack([cells.elman(n="p"), cells.elman(n="q")])
    assert named.params["layer2.W_x"] == (size_symbol("q"), size_symbol("p"))
    assert set(named.size_symbols) == {size_symbol("p"), size_symbol("q"), M}
    assert named.with_sizes(p=2, q=5, m=1) == cells.stack([cells.elman(n=2, m=1), cells.elman(n=5, m=2)])


def test_stack_with_sizes_equals_the_concrete_stack() -> None:
    symbolic = cells.stack([cells.elman(), cells.gru()])
    assert symbolic.with_sizes(n=3, m=2) == cells.stack([cells.elman(n=3, m=2), cells.gru(n=3, m=3)])
    assert symbolic.with_sizes(n=3, m=2) == symbolic.with_sizes(n=3, m=2)


def test_stack_with_matching_concrete_sizes() -> None:
    deep = cells.stack([cells.lstm(n=4, m=2), cells.gru(n=3, m=4), cells.elman(n=5, m=3)])
    assert deep.params["layer2.U_z"] == (3, 4)
    assert deep.params["layer3.W_x"] == (5, 3)


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        (
            lambda: [cells.elman(n=3, m=2), cells.lstm(n=4, m=5)],
            r"layer 2 \(lstm\) reads input 'x' of size 5, but layer 1 \(elman\) emits 'h' of size 3",
        ),
        (
            lambda: [cells.elman(n=3, m=2), cells.elman(n=3, m=3), cells.gru(n=2, m=2)],
            r"layer 3 \(gru\) reads input 'x' of size 2, but layer 2 \(elman\) emits 'h' of size 3",
        ),
        (
            lambda: [cells.bidirectional(cells.elman(n=3, m=2)), cells.elman(n=4, m=3)],
            r"of size 3, but layer 1 .* emits 'h' of size 6",
        ),
    ],
    ids=["2-layers", "3-layers", "bidirectional-below"],
)
def test_stack_size_mismatch(parts, match: str) -> None:
    with pytest.raises(CellDefinitionError, match=match):
        cells.stack(parts())


def test_stack_layer_with_two_inputs() -> None:
    two = gf.Cell(
        "two",
        states={"h": "n"},
        inputs={"x": "m", "u": "m"},
        params={"W": ("n", "m")},
        updates={"h": "tanh(W @ x + W @ u)"},
    )
    with pytest.raises(CellDefinitionError, match=r"layer 2 \(two\) has inputs \['x', 'u'\]"):
        cells.stack([cells.elman(), two])
    assert cells.stack([two, cells.elman()]).inputs.keys() == {"x", "u"}


def test_stack_emits_the_top_layer_and_stacks_jordan() -> None:
    deep = cells.stack([cells.jordan(n=3, m=2, k=4), cells.elman(n=5)])
    assert deep.params["layer2.W_x"] == (5, 4)  # jordan emits its output state y (size k)
    assert deep.emits == "layer2.h"


def test_stack_semantics_by_explicit_expansion(explicit_step, random_point, matches) -> None:
    deep = cells.stack([cells.elman(n=2, m=2), cells.elman(n=2, m=2)])
    expanded = explicit_step(deep)
    point = random_point(deep, expanded.values())
    P, S = point.P, point.S
    below = [
        sp.tanh(sum(P("layer1.W_h")[i, j] * S("layer1.h", -1)[j] for j in range(2))
                + sum(P("layer1.W_x")[i, j] * S("x", 0)[j] for j in range(2)) + P("layer1.b")[i])
        for i in range(2)
    ]  # fmt: skip
    above = [
        sp.tanh(sum(P("layer2.W_h")[i, j] * S("layer2.h", -1)[j] for j in range(2))
                + sum(P("layer2.W_x")[i, j] * below[j] for j in range(2)) + P("layer2.b")[i])
        for i in range(2)
    ]  # fmt: skip
    matches(expanded["layer1.h"], point, below, "layer1.h")
    matches(expanded["layer2.h"], point, above, "layer2.h")


# --- bidirectional ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "skip", "indrnn", "minimal", "jordan"])
@pytest.mark.parametrize("concrete", [False, True], ids=["symbolic", "concrete"])
def test_bidirectional_structure(name: str, concrete: bool) -> None:
    cell = getattr(cells, name)()
    if concrete:
        cell = cell.with_sizes(**{s.name: 2 + i for i, s in enumerate(cell.size_symbols)})
    both = cells.bidirectional(cell)
    assert both.name == f"bidirectional({cell.name})"
    assert dict(both.inputs) == dict(cell.inputs)
    assert set(both.states) == {f"{d}.{s}" for d in ("fwd", "bwd") for s in cell.states}
    assert set(both.params) == {f"{d}.{p}" for d in ("fwd", "bwd") for p in cell.params}
    assert both.backward == frozenset(f"bwd.{s}" for s in cell.states)
    out = cell.emits
    assert both.emits == out
    assert both.outputs[out] == Concat(both.signal(f"fwd.{out}"), both.signal(f"bwd.{out}"))
    assert both.outputs[out].shape == (2 * cell.signal(out).shape[0], 1)
    assert both.order[-1] == ("output", out)
    for state in cell.states:
        assert both.delays(f"fwd.{state}") == both.delays(f"bwd.{state}") == cell.delays(state)
    assert_layer_is(both, "fwd.", cell)
    assert_layer_is(both, "bwd.", cell, flip=True)


def test_bidirectional_backward_states_read_the_future() -> None:
    both = cells.bidirectional(cells.lstm(peephole=True))
    for kind, name in both.order:
        for signal in both.expression(kind, name).atoms(Signal):
            if signal.role != "state":
                assert signal.time == t
            elif signal.name.startswith("bwd."):
                assert signal.lag in (0, 1)  # c[t] for the peephole and h, else t+1
                assert name.startswith("bwd.") or kind == "output"
            else:
                assert signal.lag in (0, -1)
    assert both.intermediates["bwd.f"].atoms(Signal) >= {
        Signal("bwd.h", N, t + 1, "state"),
        Signal("bwd.c", N, t + 1, "state"),
    }


def test_bidirectional_skip_flips_the_delay() -> None:
    both = cells.bidirectional(cells.skip(delay=3))
    forward = {s.time for s in both.updates["fwd.h"].atoms(Signal) if s.role == "state"}
    backward = {s.time for s in both.updates["bwd.h"].atoms(Signal) if s.role == "state"}
    assert forward == {t - 1, t - 3}
    assert backward == {t + 1, t + 3}
    assert both.delays("bwd.h") == (1, 3)


def test_bidirectional_semantics_by_explicit_expansion(explicit_step, random_point, matches) -> None:
    both = cells.bidirectional(cells.elman(n=2, m=2))
    states = explicit_step(both)
    point = random_point(both, states.values())
    P, S = point.P, point.S
    for direction, lag in (("fwd", -1), ("bwd", 1)):
        expected = [
            sp.tanh(sum(P(f"{direction}.W_h")[i, j] * S(f"{direction}.h", lag)[j] for j in range(2))
                    + sum(P(f"{direction}.W_x")[i, j] * S("x", 0)[j] for j in range(2)) + P(f"{direction}.b")[i])
            for i in range(2)
        ]  # fmt: skip
        matches(states[f"{direction}.h"], point, expected, f"{direction}.h")
        assert list(states["h"][(0, 2)[direction == "bwd"] :][:2]) == list(states[f"{direction}.h"])


def test_bidirectional_output_expands_to_the_concatenation() -> None:
    """Regression: Concat._entry once read row i of a part before checking that i lies in it."""
    both = cells.bidirectional(cells.elman(n=2, m=2))
    explicit = sp.Matrix(both.outputs["h"].as_explicit())
    fwd, bwd = both.signal("fwd.h"), both.signal("bwd.h")
    assert list(explicit) == [fwd[0, 0], fwd[1, 0], bwd[0, 0], bwd[1, 0]]


def test_bidirectional_with_sizes_equals_bidirectional_of_the_sized_cell() -> None:
    assert cells.bidirectional(cells.gru()).with_sizes(n=3, m=2) == cells.bidirectional(cells.gru(n=3, m=2))
    assert cells.bidirectional(cells.gru()) == cells.bidirectional(cells.gru())
    assert cells.bidirectional(cells.gru()) != cells.bidirectional(cells.elman())


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        (lambda: cells.bidirectional(cells.elman()), r"already has backward states \['bwd.h'\]"),
        (lambda: "elman", r"bidirectional needs a Cell, got 'elman'"),
    ],
)
def test_bidirectional_rejects(cell, match: str) -> None:
    with pytest.raises(CellDefinitionError, match=match):
        cells.bidirectional(cell())


# --- combinations ----------------------------------------------------------------------


@pytest.mark.parametrize("concrete", [False, True], ids=["symbolic", "concrete"])
def test_stack_of_bidirectionals(concrete: bool) -> None:
    sizes = {"n": 3, "m": 2} if concrete else {}
    n = 3 if concrete else N
    deep = cells.stack([cells.bidirectional(cells.elman(**sizes)), cells.bidirectional(cells.elman(n=n))])
    assert set(deep.states) == {f"layer{k}.{d}.h" for k in (1, 2) for d in ("fwd", "bwd")}
    assert deep.backward == {"layer1.bwd.h", "layer2.bwd.h"}
    assert set(deep.outputs) == {"layer1.h", "layer2.h"}
    assert deep.emits == "layer2.h"
    assert deep.params["layer2.fwd.W_x"] == deep.params["layer2.bwd.W_x"] == (n, 2 * n)
    below = Signal("layer1.h", 2 * n, t, "output")
    for direction in ("fwd", "bwd"):
        assert below in deep.updates[f"layer2.{direction}.h"].atoms(Signal)
    assert deep.outputs["layer2.h"].shape == (2 * n, 1)
    lags = {s.lag for s in deep.updates["layer2.bwd.h"].atoms(Signal) if s.name == "layer2.bwd.h"}
    assert lags == {1}


def test_stack_of_bidirectionals_sets_the_next_input_size() -> None:
    deep = cells.stack([cells.bidirectional(cells.lstm(n=3, m=2)), cells.gru(n=4)])
    assert deep.params["layer2.U_z"] == (4, 6)


@pytest.mark.parametrize("concrete", [False, True], ids=["symbolic", "concrete"])
def test_bidirectional_of_a_stack(concrete: bool) -> None:
    sizes = {"n": 3, "m": 2} if concrete else {}
    inner = cells.stack([cells.elman(**sizes), cells.lstm(**({"n": 3} if concrete else {}))])
    both = cells.bidirectional(inner)
    n = 3 if concrete else N
    assert set(both.states) == {
        f"{d}.layer{k}.{s}" for d in ("fwd", "bwd") for k, ss in ((1, "h"), (2, "hc")) for s in ss
    }
    assert both.backward == {"bwd.layer1.h", "bwd.layer2.h", "bwd.layer2.c"}
    assert both.emits == "h"
    assert both.outputs["h"] == Concat(both.signal("fwd.layer2.h"), both.signal("bwd.layer2.h"))
    # the backward layer 2 reads backward layer 1 at t (not t+1), and its own state at t+1
    reads = {(s.name, s.lag) for s in both.intermediates["bwd.layer2.f"].atoms(Signal)}
    assert reads == {("bwd.layer1.h", 0), ("bwd.layer2.h", 1)}
    assert both.params["bwd.layer2.U_f"] == (n, n)
    assert_layer_is(both, "bwd.", inner, flip=True)
    assert_layer_is(both, "fwd.", inner)


@pytest.mark.parametrize(
    ("cells_", "match"),
    [
        (lambda: [cells.elman()], r"stack needs a sequence of at least two Cells"),
        (lambda: [], r"stack needs a sequence of at least two Cells, got \[\]"),
        (lambda: [cells.elman(), "elman"], r"at least two Cells"),
    ],
    ids=["one", "none", "not-a-cell"],
)
def test_stack_rejects(cells_, match: str) -> None:
    with pytest.raises(CellDefinitionError, match=match):
        cells.stack(cells_())
