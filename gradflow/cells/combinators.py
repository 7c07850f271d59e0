r"""Combinators: stacked (multi-layer) and bidirectional cells.

Both return an ordinary :class:`~gradflow.cells.cell.Cell` whose names are
prefixed: ``layer1.h``, ``layer2.W_h`` for a stack (layers counted from 1),
``fwd.h``, ``bwd.h`` for the two directions of a bidirectional cell; the
inputs keep their names. The combined equations are the layers' own
equations with the names rewritten, so they go through the same validation
as any cell.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.parse import dotted_name
from gradflow.errors import CellDefinitionError

__all__ = ["bidirectional", "stack"]


def _emitted_size(cell: Cell) -> sp.Expr:
    name = cell.emits
    if name in cell.outputs:
        return cell.outputs[name].shape[0]  # type: ignore[no-any-return]
    return cell.states[name]


class _Rewrite(ast.NodeTransformer):
    """Rename the cell's names; replace inputs by expressions; flip time offsets."""

    def __init__(self, rename: Mapping[str, str], replace: Mapping[str, str], flip: frozenset[str]) -> None:
        self.rename = rename
        self.replace = {k: ast.parse(v, mode="eval").body for k, v in replace.items()}
        self.flip = flip

    def _named(self, node: ast.expr) -> ast.expr | None:
        name = dotted_name(node)
        if name is None:
            return None
        if name in self.replace:
            return self.replace[name]
        if name in self.rename:
            return ast.parse(self.rename[name], mode="eval").body
        return None

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self._named(node) or node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        return self._named(node) or node

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        name = dotted_name(node.value)
        if name in self.replace:  # an input read as x[t]: the replacement is already at t
            return self.replace[name]
        if (
            name in self.flip
            and isinstance(node.slice, ast.BinOp)
            and isinstance(node.slice.op, ast.Add | ast.Sub)
        ):
            node.slice.op = ast.Add() if isinstance(node.slice.op, ast.Sub) else ast.Sub()
        node.value = self.visit(node.value)
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:  # activation names are not renamed
        node.args = [self.visit(arg) for arg in node.args]
        return node


def _rewritten(
    cell: Cell, prefix: str, replace: Mapping[str, str] | None = None, flip: bool = False
) -> dict[str, Any]:
    """The constructor arguments of ``cell`` with every non-input name prefixed."""
    spec = cell._spec()  # combinators rebuild cells from their specs
    own = [*spec["states"], *spec["params"], *spec["intermediates"], *spec["outputs"]]
    rename = {name: f"{prefix}{name}" for name in own}
    rewrite = _Rewrite(rename, replace or {}, frozenset(spec["states"]) if flip else frozenset())

    def text(source: str) -> str:
        tree = ast.parse(source, mode="eval")
        tree.body = rewrite.visit(tree.body)
        return ast.unparse(tree)

    def prefixed(mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {rename[k]: v for k, v in mapping.items()}

    return {
        "states": prefixed(spec["states"]),
        "inputs": {k: v for k, v in spec["inputs"].items() if k not in (replace or {})},
        "params": prefixed(spec["params"]),
        "intermediates": {rename[k]: text(v) for k, v in spec["intermediates"].items()},
        "updates": {rename[k]: text(v) for k, v in spec["updates"].items()},
        "outputs": {rename[k]: text(v) for k, v in spec["outputs"].items()},
        "activations": spec["activations"],
        "backward": {rename[s] for s in spec["backward"]},
        "emits": rename[spec["emits"]],
        "references": spec["references"],
    }


def _merge(name: str, parts: Sequence[dict[str, Any]], description: str, emits: str, **extra: Any) -> Cell:
    merged: dict[str, Any] = {
        key: {}
        for key in ("states", "inputs", "params", "intermediates", "updates", "outputs", "activations")
    }
    backward: set[str] = set()
    references: list[str] = []
    for part in parts:
        for key in merged:
            for k, v in part[key].items():
                if key in ("inputs", "activations") and k in merged[key] and merged[key][k] != v:
                    raise CellDefinitionError(
                        f"{name}: the parts disagree about {key[:-1]} {k!r} ({merged[key][k]} vs {v})"
                    )
                merged[key][k] = v
        backward |= part["backward"]
        references += [r for r in part["references"] if r not in references]
    for key, value in extra.items():
        merged[key].update(value)
    return Cell(
        name, **merged, backward=backward, emits=emits, description=description, references=tuple(references)
    )


def stack(cells: Sequence[Cell]) -> Cell:
    r"""Stack cells into a multi-layer RNN: layer k reads layer k-1's emitted signal at time t.

    Layer 1 reads the inputs; layer k > 1 must have exactly one input, whose
    size is set to (or must equal) the size of what layer k-1 emits
    (:attr:`Cell.emits`: :math:`h` for Elman, LSTM and GRU). The stack emits
    what its top layer emits.

    Parameters
    ----------
    cells : sequence of Cell
        The layers, bottom first (at least two).

    Raises
    ------
    CellDefinitionError
        Fewer than two layers, a layer > 1 with several inputs, or sizes that
        cannot match.

    Examples
    --------
    >>> from gradflow.cells.builtin import elman
    >>> deep = stack([elman(), elman()])
    >>> deep.updates["layer2.h"]
    tanh(layer2.W_h*layer2.h[t - 1] + layer2.W_x*layer1.h[t] + layer2.b)

    References
    ----------
    CS224n lecture 7 (multi-layer RNNs); A. Graves, A. Mohamed, G. Hinton,
    "Speech recognition with deep recurrent neural networks", ICASSP 2013.
    """
    cells = list(cells)
    if len(cells) < 2 or not all(isinstance(c, Cell) for c in cells):
        raise CellDefinitionError(f"stack needs a sequence of at least two Cells, got {cells!r}")
    parts = []
    below: Cell | None = None
    for k, cell in enumerate(cells, start=1):
        replace: dict[str, str] = {}
        if below is not None:
            if len(cell.inputs) != 1:
                raise CellDefinitionError(
                    f"stack: layer {k} ({cell.name}) has inputs {list(cell.inputs)}; a stacked layer "
                    "reads exactly one input, the layer below"
                )
            ((input_name, input_size),) = cell.inputs.items()
            size = _emitted_size(below)
            if input_size != size:
                if not isinstance(input_size, sp.Symbol):
                    raise CellDefinitionError(
                        f"stack: layer {k} ({cell.name}) reads input {input_name!r} of size "
                        f"{input_size}, but layer {k - 1} ({below.name}) emits "
                        f"{below.emits!r} of size {size}"
                    )
                cell = _resized(cell, input_size, size)
            replace[input_name] = f"layer{k - 1}.{below.emits}[t]"
        parts.append(_rewritten(cell, f"layer{k}.", replace))
        below = cell
    name = "stack(" + ", ".join(c.name for c in cells) + ")"
    description = f"{len(cells)}-layer stack: " + ", ".join(c.name for c in cells) + "."
    return _merge(name, parts, description, emits=parts[-1]["emits"])


def _resized(cell: Cell, symbol: sp.Symbol, size: sp.Expr) -> Cell:
    """The cell with a symbolic size replaced by another size (symbolic or int)."""
    spec = cell._spec()
    mapping = {symbol: size}
    spec["states"] = {k: sp.sympify(v).xreplace(mapping) for k, v in spec["states"].items()}
    spec["inputs"] = {k: sp.sympify(v).xreplace(mapping) for k, v in spec["inputs"].items()}
    spec["params"] = {k: tuple(s.xreplace(mapping) for s in v) for k, v in spec["params"].items()}
    return Cell(cell.name, **spec)


def bidirectional(cell: Cell) -> Cell:
    r"""Run a cell forwards and a copy backwards in time; output their concatenation.

    The forward copy's names get the prefix ``fwd.``, the backward copy's
    ``bwd.`` (its states read :math:`s^{(t+1)}`); both read the same inputs.
    The output, named after what the cell emits (``h``), is
    :math:`[\overrightarrow{h}^{(t)}; \overleftarrow{h}^{(t)}]`.

    Raises
    ------
    CellDefinitionError
        If the cell already runs backwards somewhere.

    Examples
    --------
    >>> from gradflow.cells.builtin import gru
    >>> both = bidirectional(gru())
    >>> sorted(both.backward)
    ['bwd.h']
    >>> both.outputs["h"].shape
    (2*n, 1)

    References
    ----------
    M. Schuster, K. K. Paliwal, "Bidirectional recurrent neural networks",
    IEEE Trans. Signal Processing 45(11), 1997.
    """
    if not isinstance(cell, Cell):
        raise CellDefinitionError(f"bidirectional needs a Cell, got {cell!r}")
    if cell.backward:
        raise CellDefinitionError(
            f"bidirectional: cell {cell.name!r} already has backward states {sorted(cell.backward)}"
        )
    inner = cell.emits
    out = inner.rsplit(".", 1)[-1]
    forward = _rewritten(cell, "fwd.")
    backward = _rewritten(cell, "bwd.", flip=True)
    backward["backward"] = set(backward["states"])
    return _merge(
        f"bidirectional({cell.name})",
        [forward, backward],
        f"Bidirectional {cell.name}: one copy forwards, one backwards in time.",
        emits=out,
        outputs={out: f"[fwd.{inner}, bwd.{inner}]"},
    )
