"""How a PyTorch recurrent module maps onto gradflow's cells: its layout, its cell, its arrays.

Private to :mod:`gradflow.numeric.interop`, which documents the mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradflow.cells import Cell, bidirectional, elman, gru, lstm, stack
from gradflow.errors import BackendUnavailableError, ShapeError, UnsupportedModuleError
from gradflow.numeric.backend import dtype_of, namespace, to_numpy

__all__ = ["UnsupportedModuleError"]


#: Row blocks of PyTorch's stacked gate weights, in PyTorch's gate order:
#: (recurrent matrix, input matrix, bias taking ``bias_ih``, bias taking ``bias_hh``).
_BLOCKS = {
    "rnn": (("W_h", "W_x", "b", "b"),),
    "lstm": tuple((f"W_{g}", f"U_{g}", f"b_{g}", f"b_{g}") for g in "ifco"),
    "gru": (("W_r", "U_r", "b_r", "b_r"), ("W_z", "U_z", "b_z", "b_z"), ("W_h", "U_h", "b_h", "b_Wh")),
}
_MODES = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise BackendUnavailableError(
            'PyTorch is needed to read torch modules; pip install "gradflow[torch]" (torch==2.13.0)'
        ) from err
    return torch


@dataclass(frozen=True)
class _Layout:
    """What gradflow needs to know of a recurrent module."""

    kind: str  # "rnn", "lstm" or "gru"
    activation: str  # of the Elman cell: "tanh" or "relu"
    layers: int
    directions: int
    input_size: int
    hidden_size: int
    bias: bool
    batch_first: bool
    single_step: bool  # an nn.*Cell: parameters without suffix, states without the layer axis

    def slots(self) -> Iterator[tuple[str, str]]:
        """``(gradflow prefix, PyTorch suffix)`` in PyTorch's order: layer by layer, forward first."""
        for layer in range(self.layers):
            for direction in range(self.directions):
                prefix = f"layer{layer + 1}." if self.layers > 1 else ""
                prefix += ("fwd.", "bwd.")[direction] if self.directions == 2 else ""
                yield prefix, "" if self.single_step else f"_l{layer}" + ("_reverse" if direction else "")

    @property
    def states(self) -> tuple[str, ...]:
        return ("h", "c") if self.kind == "lstm" else ("h",)


def _layout(module: Any) -> _Layout:
    nn = _torch().nn
    name = type(module).__name__
    mode, single_step = None, isinstance(module, nn.RNNCellBase)
    if isinstance(module, nn.RNNBase):
        mode = module.mode
        if getattr(module, "proj_size", 0) > 0:
            raise UnsupportedModuleError(
                f"{name} has proj_size={module.proj_size}: gradflow's lstm cell has no projection of h; "
                "use a module with proj_size=0"
            )
    elif single_step:
        lstm_or_gru = {nn.LSTMCell: "LSTM", nn.GRUCell: "GRU"}
        mode = next((v for k, v in lstm_or_gru.items() if isinstance(module, k)), None)
        mode = mode or f"RNN_{getattr(module, 'nonlinearity', '')}".upper()
    if mode not in _MODES:
        raise UnsupportedModuleError(
            f"cannot read a {name}: gradflow maps torch.nn.RNN (tanh or relu), LSTM and GRU "
            "(any num_layers, bidirectional, bias, batch_first) and RNNCell, LSTMCell, GRUCell"
        )
    return _Layout(
        kind=_MODES[mode],
        activation="relu" if mode == "RNN_RELU" else "tanh",
        layers=1 if single_step else int(module.num_layers),
        directions=2 if getattr(module, "bidirectional", False) else 1,
        input_size=int(module.input_size),
        hidden_size=int(module.hidden_size),
        bias=bool(module.bias),
        batch_first=bool(getattr(module, "batch_first", False)),
        single_step=single_step,
    )


def _cell(layout: _Layout) -> Cell:
    n, layers = layout.hidden_size, []
    for layer in range(layout.layers):
        m = layout.input_size if layer == 0 else n * layout.directions
        if layout.kind == "rnn":
            cell = elman(layout.activation, n=n, m=m)
        else:
            cell = lstm(n=n, m=m) if layout.kind == "lstm" else gru(reset_after=True, n=n, m=m)
        layers.append(bidirectional(cell) if layout.directions == 2 else cell)
    return stack(layers) if len(layers) > 1 else layers[0]


def _numpy(value: Any, dtype: Any, what: str) -> np.ndarray:
    """A NumPy copy of a tensor (detached, on the CPU) or of an array.

    Raises
    ------
    ShapeError
        For a ``PackedSequence`` (it says how to unpack it), a tensor on the
        ``meta`` device (it has no values), anything that is not an array of
        numbers, or finite numbers that overflow a float32 ``dtype``.
    """
    if type(value).__module__.split(".")[0] == "torch":
        torch = _torch()
        if isinstance(value, torch.nn.utils.rnn.PackedSequence):
            raise ShapeError(
                f"{what} is a PackedSequence; gradflow reads padded (T, B, size) tensors and runs every "
                "sequence for all T steps: unpack it with "
                "torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=module.batch_first)[0]"
            )
        if not isinstance(value, torch.Tensor):
            raise ShapeError(f"{what} must be a tensor or an array of numbers, got {type(value).__name__}")
        if value.is_meta:
            raise ShapeError(
                f"{what} is a tensor on the 'meta' device, which holds no values; "
                "create it (or move it) on a real device such as 'cpu'"
            )
        value = value.detach().cpu().double().numpy()
    real = dtype_of(namespace("numpy"), dtype)
    try:
        source = to_numpy(value)
        with np.errstate(over="ignore"):
            array = np.array(source, dtype=real)
    except (TypeError, ValueError) as err:
        raise ShapeError(
            f"{what} must be a tensor or an array of numbers, got {type(value).__name__}"
        ) from err
    if real != np.float64 and not np.all(np.isfinite(array)):
        overflowed = np.isfinite(np.asarray(source, dtype=np.float64)) & ~np.isfinite(array)
        if np.any(overflowed):
            raise ShapeError(
                f"{what} holds numbers beyond the largest {np.dtype(real).name} ({np.finfo(real).max:.4g}); "
                "use dtype='float64'"
            )
    return array


def _weight(module: Any, name: str) -> np.ndarray:
    """A weight of ``module`` as a float64 NumPy copy: on a real device, every entry finite.

    Raises
    ------
    UnsupportedModuleError
        For a weight on the ``meta`` device (a module built without values).
    ShapeError
        For a weight holding NaN or infinite entries.
    """
    tensor = getattr(module, name)
    if getattr(tensor, "is_meta", False):
        raise UnsupportedModuleError(
            f"{type(module).__name__}.{name} is on the 'meta' device, so the module has no weights to read; "
            "materialise it first, e.g. module.to_empty(device='cpu') and then load_state_dict(...) "
            "or reset_parameters()"
        )
    array = _numpy(tensor, None, name)
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ShapeError(
            f"{type(module).__name__} weight {name!r} holds {bad} NaN or infinite "
            f"entr{'y' if bad == 1 else 'ies'} of {array.size}; gradflow needs finite weights "
            "(was the module trained to divergence, or left uninitialised?)"
        )
    return array
