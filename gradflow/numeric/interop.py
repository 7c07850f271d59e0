r"""PyTorch interop: a trained ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` as a gradflow cell and parameters.

:func:`from_torch` reads a module into the matching built-in cell
(:func:`~gradflow.cells.elman`, :func:`~gradflow.cells.lstm`,
:func:`~gradflow.cells.gru` with ``reset_after=True``), stacked with
:func:`~gradflow.cells.stack` for ``num_layers > 1`` and doubled with
:func:`~gradflow.cells.bidirectional`; ``nn.RNNCell``, ``nn.LSTMCell`` and
``nn.GRUCell`` give the plain cell. The other functions translate what goes
in and out of a module:

* :func:`sequence_from_torch` -- an input (or a gradient of ``output``) as gradflow's time-major (T, B, size);
* :func:`initial_from_torch` -- ``h0``, ``c0`` as the ``initial`` of ``simulate`` and ``bptt``;
* :func:`output_to_torch`, :func:`final_states`, :func:`states_to_torch` -- ``output``, ``h_n``, ``c_n``;
* :func:`upstream_from_torch` -- a loss's gradients at ``output``, ``h_n``, ``c_n`` as ``bptt``'s ``upstream``;
* :func:`gradients_to_torch` -- parameter gradients keyed like ``module.named_parameters()``.

PyTorch keeps two biases per gate, ``bias_ih`` and ``bias_hh``. The cell
depends on their sum only (but in the GRU's candidate, where ``bias_hh`` sits
inside the reset and becomes ``b_Wh``), so gradflow's one bias is their sum,
and both get its gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradflow.cells import Cell
from gradflow.errors import ShapeError
from gradflow.numeric._torch_arrays import (
    final_states,
    gradients_to_torch,
    initial_from_torch,
    output_to_torch,
    sequence_from_torch,
    states_to_torch,
    upstream_from_torch,
)
from gradflow.numeric._torch_layout import _BLOCKS, UnsupportedModuleError, _cell, _layout, _numpy, _weight

__all__ = [
    "UnsupportedModuleError",
    "final_states",
    "from_torch",
    "gradients_to_torch",
    "initial_from_torch",
    "output_to_torch",
    "sequence_from_torch",
    "states_to_torch",
    "upstream_from_torch",
]


def from_torch(module: Any, *, dtype: Any = None) -> tuple[Cell, dict[str, np.ndarray]]:
    r"""The gradflow cell and parameters of a PyTorch recurrent module.

    Parameters
    ----------
    module : torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell
        Any ``num_layers`` (a :func:`~gradflow.cells.stack`: ``layer1.W_h``,
        ...), ``bidirectional`` (a :func:`~gradflow.cells.bidirectional`
        layer: ``fwd.W_h``, ``bwd.W_h``), ``bias``, ``batch_first``; weights of
        any float dtype on any device. ``dropout`` is accepted and ignored:
        gradflow's cells have no dropout, so they match the module in ``eval()`` mode.
    dtype : None, "float32" or "float64"
        Of the returned arrays; float64 by default.

    Returns
    -------
    cell : Cell
        ``elman(nonlinearity)``, ``lstm()`` or ``gru(reset_after=True)`` with
        the module's sizes; ``cell.emits`` (``"h"``, or ``"layer2.h"`` ...) is
        PyTorch's ``output``.
    params : dict of str to numpy.ndarray
        Copies, with the cell's names and shapes: ``W_g`` (n, n) from
        ``weight_hh``, ``U_g`` (n, m) from ``weight_ih``, ``b_g`` (n,) =
        ``bias_ih + bias_hh`` (the GRU candidate's ``b_h`` = ``bias_ih``,
        ``b_Wh`` = ``bias_hh``). With ``bias=False`` the biases are zero
        arrays: gradflow's cells always have them.

    Raises
    ------
    UnsupportedModuleError
        For any other module, an LSTM with ``proj_size > 0``, or a module on
        the ``meta`` device (it has no weights to read).
    ShapeError
        For a weight holding NaN or infinite entries (the message names it,
        e.g. ``'weight_hh_l0'``), biases whose sum overflows, or a parameter
        beyond the float32 range when ``dtype="float32"``.
    BackendUnavailableError
        When PyTorch is not installed (``pip install "gradflow[torch]"``).

    Notes
    -----
    gradflow's arrays are time-major, (T, B, m): :func:`sequence_from_torch`
    converts a ``batch_first`` module's (B, T, m) (as does ``x.transpose(0, 1)``).

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> gru = torch.nn.GRU(input_size=3, hidden_size=4, num_layers=2, bidirectional=True).double()
    >>> cell, params = from_torch(gru)
    >>> cell.emits, params["layer2.fwd.U_z"].shape
    ('layer2.h', (4, 8))
    >>> x = torch.randn(5, 2, 3, dtype=torch.float64)
    >>> output, h_n = gru(x)
    >>> traj = gf.simulate(cell, params, sequence_from_torch(gru, x))
    >>> bool(np.allclose(output_to_torch(gru, traj), output.detach().numpy()))
    True
    >>> bool(np.allclose(states_to_torch(gru, final_states(traj))[0], h_n.detach().numpy()))
    True
    """
    layout = _layout(module)
    n = layout.hidden_size
    params: dict[str, np.ndarray] = {}
    for prefix, suffix in layout.slots():
        names = (
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if layout.bias else ("weight_ih", "weight_hh")
        )
        weights = {k: _weight(module, k + suffix) for k in names}
        for k, (W, U, b_ih, b_hh) in enumerate(_BLOCKS[layout.kind]):
            rows = slice(k * n, (k + 1) * n)
            params[prefix + W], params[prefix + U] = weights["weight_hh"][rows], weights["weight_ih"][rows]
            ih, hh = (weights[b][rows] if layout.bias else np.zeros(n) for b in ("bias_ih", "bias_hh"))
            if b_ih == b_hh:
                with np.errstate(over="ignore"):
                    params[prefix + b_ih] = ih + hh
                if not np.all(np.isfinite(params[prefix + b_ih])):
                    raise ShapeError(
                        f"bias_ih{suffix} + bias_hh{suffix} overflows (gradflow's bias {prefix + b_ih!r} is "
                        "their sum); scale the module's biases down"
                    )
            else:
                params[prefix + b_ih], params[prefix + b_hh] = ih, hh
    cell = _cell(layout)
    return cell, {name: _numpy(params[name], dtype, f"parameter {name!r}") for name in cell.params}
