r"""The built-in cells, in the notation of the source documents (CS224n).

Each constructor returns a :class:`~gradflow.cells.cell.Cell` written in the
cell language: the equations below are the cell's only definition. Sizes are
symbolic (``n`` hidden, ``m`` input, ``k`` output) unless integers are given.

Naming: recurrent matrices :math:`W_g` (:math:`n \times n`), input matrices
:math:`U_g` (:math:`n \times m`) and biases :math:`b_g` (:math:`n`) for a
gate :math:`g`, as in CS224n lecture 7; :math:`W_h, W_x, b` for the simple
cells.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import sympy as sp

from gradflow._checks import is_int
from gradflow.cells.activations import CATALOGUE, Activation, as_activation
from gradflow.cells.cell import Cell
from gradflow.errors import CellDefinitionError

__all__ = ["ctrnn", "elman", "gru", "indrnn", "jordan", "leaky", "lstm", "minimal", "skip"]

Size: TypeAlias = int | str | sp.Expr


def _act(spec: Any, role: str) -> tuple[str, dict[str, Activation]]:
    """The name to write in equations for an activation, and the declaration it needs."""
    activation = as_activation(spec)
    key = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in activation.name).strip("_")
    if key in CATALOGUE and CATALOGUE[key]() == activation:
        return key, {}
    key = f"{role}_{key}" if key else role
    return key, {key: activation}


def _scalar(
    value: Any, name: str, cell: str, *, unit_interval: bool = False
) -> tuple[str, dict[str, tuple[()]]]:
    """A scalar that is a number (a constant) or a name (a scalar parameter).

    Numbers must be positive, or lie in [0, 1] when ``unit_interval``.
    """
    if isinstance(value, str):
        if not value.isidentifier():
            raise CellDefinitionError(f"{cell}: {name} must be a number or a parameter name, got {value!r}")
        return value, {value: ()}
    if isinstance(value, sp.Symbol):
        return value.name, {value.name: ()}
    if isinstance(value, bool) or not isinstance(value, int | float | sp.Rational):
        raise CellDefinitionError(f"{cell}: {name} must be a number or a parameter name, got {value!r}")
    number = sp.Rational(str(value)) if isinstance(value, float) else sp.Rational(value)
    if unit_interval and not 0 <= number <= 1:
        raise CellDefinitionError(f"{cell}: {name}={value!r} must lie in [0, 1]")
    if not unit_interval and not number > 0:
        raise CellDefinitionError(f"{cell}: {name}={value!r} must be positive")
    return f"({number})", {}


def elman(activation: Any = "tanh", *, n: Size = "n", m: Size = "m") -> Cell:
    r"""The Elman (simple) RNN, :math:`h^{(t)} = \sigma(W_h h^{(t-1)} + W_x x^{(t)} + b)`.

    Parameters
    ----------
    activation : str or Activation, default "tanh"
        :math:`\sigma`; any catalogue name or user activation ("sigma" for a
        generic, undefined one).
    n, m : int or str
        Hidden and input sizes.

    Examples
    --------
    >>> cell = elman()
    >>> dict(cell.params)
    {'W_h': (n, n), 'W_x': (n, m), 'b': (n,)}

    References
    ----------
    J. L. Elman, "Finding structure in time", Cognitive Science 14 (1990).
    CS224n lecture 7; R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty
    of training recurrent neural networks", ICML 2013.
    """
    sigma, extra = _act(activation, "sigma")
    return Cell(
        "elman",
        states={"h": n},
        inputs={"x": m},
        params={"W_h": (n, n), "W_x": (n, m), "b": n},
        updates={"h": f"{sigma}(W_h @ h + W_x @ x + b)"},
        activations=extra,
        description="Elman network: the hidden state is fed back (CS224n notation).",
        references=(
            "J. L. Elman, Finding structure in time, Cognitive Science 14(2), 1990.",
            "R. Pascanu, T. Mikolov, Y. Bengio, On the difficulty of training recurrent neural networks, ICML 2013.",
        ),
    )


def jordan(
    activation: Any = "tanh",
    output_activation: Any = "tanh",
    *,
    n: Size = "n",
    m: Size = "m",
    k: Size = "k",
) -> Cell:
    r"""The Jordan network: the previous *output* is fed back.

    .. math::
        h^{(t)} = \sigma(W_h y^{(t-1)} + W_x x^{(t)} + b), \qquad
        y^{(t)} = \sigma_y(W_y h^{(t)} + b_y)

    The state is :math:`y` (size k); :math:`h` (size n) is an intermediate.

    References
    ----------
    M. I. Jordan, "Serial order: a parallel distributed processing approach",
    ICS report 8604, 1986. Datawhale notes (seed 004): Elman stores the hidden
    value, Jordan the previous output.
    """
    sigma, extra = _act(activation, "sigma")
    sigma_y, extra_y = _act(output_activation, "sigma_y")
    return Cell(
        "jordan",
        states={"y": k},
        inputs={"x": m},
        params={"W_h": (n, k), "W_x": (n, m), "b": n, "W_y": (k, n), "b_y": k},
        intermediates={"h": f"{sigma}(W_h @ y + W_x @ x + b)"},
        updates={"y": f"{sigma_y}(W_y @ h + b_y)"},
        activations={**extra, **extra_y},
        description="Jordan network: the previous output is fed back into the hidden layer.",
        references=(
            "M. I. Jordan, Serial order: a parallel distributed processing approach, ICS report 8604, 1986.",
        ),
    )


def lstm(
    forget_gate: bool = True,
    peephole: bool = False,
    *,
    n: Size = "n",
    m: Size = "m",
    activation: Any = "tanh",
    cell_activation: Any = "tanh",
    gate_activation: Any = "sigmoid",
) -> Cell:
    r"""Long short-term memory.

    With the forget gate (Gers, Schmidhuber, Cummins 2000; CS224n):

    .. math::
        f^{(t)} &= \sigma(W_f h^{(t-1)} + U_f x^{(t)} + b_f) \\
        i^{(t)} &= \sigma(W_i h^{(t-1)} + U_i x^{(t)} + b_i) \\
        o^{(t)} &= \sigma(W_o h^{(t-1)} + U_o x^{(t)} + b_o) \\
        \tilde{c}^{(t)} &= \tanh(W_c h^{(t-1)} + U_c x^{(t)} + b_c) \\
        c^{(t)} &= f^{(t)} \circ c^{(t-1)} + i^{(t)} \circ \tilde{c}^{(t)} \\
        h^{(t)} &= o^{(t)} \circ \tanh(c^{(t)})

    ``forget_gate=False`` is the 1997 cell: :math:`c^{(t)} = c^{(t-1)} + i^{(t)}
    \circ \tilde{c}^{(t)}`, the constant error carousel (CEC).
    ``peephole=True`` adds diagonal peepholes: :math:`f, i` see
    :math:`p_f \circ c^{(t-1)}, p_i \circ c^{(t-1)}`; :math:`o` sees
    :math:`p_o \circ c^{(t)}` (Gers & Schmidhuber 2000).

    Parameters
    ----------
    forget_gate, peephole : bool
    n, m : int or str
        Hidden and input sizes.
    activation : default "tanh"
        Of the candidate :math:`\tilde{c}` (the 1997 paper's g).
    cell_activation : default "tanh"
        Applied to the cell before the output gate (the 1997 paper's h).
    gate_activation : default "sigmoid"
        Of the gates.

    References
    ----------
    S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural
    Computation 9(8), 1997. F. A. Gers, J. Schmidhuber, F. Cummins, "Learning
    to forget: continual prediction with LSTM", Neural Computation 12(10),
    2000. F. A. Gers, J. Schmidhuber, "Recurrent nets that time and count",
    IJCNN 2000.
    """
    g_act, extra_g = _act(gate_activation, "sigma_g")
    c_act, extra_c = _act(activation, "sigma_c")
    h_act, extra_h = _act(cell_activation, "sigma_h")
    gates = ["f", "i", "o"] if forget_gate else ["i", "o"]
    params: dict[str, Any] = {}
    for g in [*gates, "c"]:
        params.update({f"W_{g}": (n, n), f"U_{g}": (n, m), f"b_{g}": n})
    intermediates: dict[str, str] = {}
    for g in gates:
        peep = ""
        if peephole:
            params[f"p_{g}"] = n
            peep = f" + p_{g} * {'c[t]' if g == 'o' else 'c'}"
        intermediates[g] = f"{g_act}(W_{g} @ h + U_{g} @ x{peep} + b_{g})"
    intermediates["c_tilde"] = f"{c_act}(W_c @ h + U_c @ x + b_c)"
    carry = "f * c" if forget_gate else "c"
    name = "lstm" if forget_gate else "lstm1997"
    if peephole:
        name += "_peephole"
    references = ["S. Hochreiter, J. Schmidhuber, Long short-term memory, Neural Computation 9(8), 1997."]
    if forget_gate:
        references.append(
            "F. A. Gers, J. Schmidhuber, F. Cummins, Learning to forget: continual prediction with LSTM, Neural Computation 12(10), 2000."
        )
    if peephole:
        references.append("F. A. Gers, J. Schmidhuber, Recurrent nets that time and count, IJCNN 2000.")
    return Cell(
        name,
        states={"h": n, "c": n},
        inputs={"x": m},
        params=params,
        intermediates=intermediates,
        updates={"c": f"{carry} + i * c_tilde", "h": f"o * {h_act}(c[t])"},
        activations={**extra_g, **extra_c, **extra_h},
        description=(
            "LSTM with forget gate (CS224n notation)"
            if forget_gate
            else "LSTM of 1997: no forget gate, the cell is a constant error carousel"
        )
        + (", with peephole connections." if peephole else "."),
        references=tuple(references),
    )


def gru(reset_after: bool = False, *, n: Size = "n", m: Size = "m") -> Cell:
    r"""Gated recurrent unit (Cho et al. 2014).

    .. math::
        z^{(t)} &= \sigma(W_z h^{(t-1)} + U_z x^{(t)} + b_z) \\
        r^{(t)} &= \sigma(W_r h^{(t-1)} + U_r x^{(t)} + b_r) \\
        \tilde{h}^{(t)} &= \tanh(W_h (r^{(t)} \circ h^{(t-1)}) + U_h x^{(t)} + b_h) \\
        h^{(t)} &= z^{(t)} \circ h^{(t-1)} + (1 - z^{(t)}) \circ \tilde{h}^{(t)}

    The update gate :math:`z` keeps the old state, as in Cho et al. and
    PyTorch (CS224n's update gate is :math:`u = 1 - z`).
    ``reset_after=True`` is the cuDNN / PyTorch form, with its extra
    recurrent bias :math:`b_{Wh}` inside the reset:
    :math:`\tilde{h}^{(t)} = \tanh(U_h x^{(t)} + b_h + r^{(t)} \circ (W_h h^{(t-1)} + b_{Wh}))`.

    References
    ----------
    K. Cho et al., "Learning phrase representations using RNN
    encoder-decoder for statistical machine translation", EMNLP 2014.
    PyTorch ``torch.nn.GRU`` documentation (the reset-after form).
    """
    params: dict[str, Any] = {}
    for g in ("z", "r", "h"):
        params.update({f"W_{g}": (n, n), f"U_{g}": (n, m), f"b_{g}": n})
    if reset_after:
        params["b_Wh"] = n
        candidate = "tanh(U_h @ x + b_h + r * (W_h @ h + b_Wh))"
    else:
        candidate = "tanh(W_h @ (r * h) + U_h @ x + b_h)"
    return Cell(
        "gru_reset_after" if reset_after else "gru",
        states={"h": n},
        inputs={"x": m},
        params=params,
        intermediates={
            "z": "sigmoid(W_z @ h + U_z @ x + b_z)",
            "r": "sigmoid(W_r @ h + U_r @ x + b_r)",
            "h_tilde": candidate,
        },
        updates={"h": "z * h + (1 - z) * h_tilde"},
        description="Gated recurrent unit"
        + (" (reset applied after the recurrent matrix, cuDNN/PyTorch)." if reset_after else "."),
        references=(
            "K. Cho et al., Learning phrase representations using RNN encoder-decoder for statistical machine translation, EMNLP 2014.",
        ),
    )


def leaky(alpha: Any = "alpha", activation: Any = "tanh", *, n: Size = "n", m: Size = "m") -> Cell:
    r"""Leaky units: :math:`h^{(t)} = \alpha h^{(t-1)} + (1 - \alpha)\,\sigma(W_h h^{(t-1)} + W_x x^{(t)} + b)`.

    Parameters
    ----------
    alpha : number in [0, 1] or str, default "alpha"
        A number makes a constant leak; a name makes a scalar parameter.
        :math:`\alpha \to 1` keeps information for long (seed 003, C17).

    References
    ----------
    Goodfellow, Bengio, Courville, *Deep Learning*, §10.9.2 (leaky units);
    M. C. Mozer, "Induction of multiscale temporal structure", NIPS 1992.
    """
    a, scalar = _scalar(alpha, "alpha", "leaky", unit_interval=True)
    sigma, extra = _act(activation, "sigma")
    return Cell(
        "leaky",
        states={"h": n},
        inputs={"x": m},
        params={"W_h": (n, n), "W_x": (n, m), "b": n, **scalar},
        updates={"h": f"{a} * h + (1 - {a}) * {sigma}(W_h @ h + W_x @ x + b)"},
        activations=extra,
        description="Leaky integration units: a running average with self-loop weight alpha.",
        references=(
            "I. Goodfellow, Y. Bengio, A. Courville, Deep Learning, MIT Press 2016, section 10.9.2.",
            "M. C. Mozer, Induction of multiscale temporal structure, NIPS 1992.",
        ),
    )


def skip(
    delay: int = 2, activation: Any = "tanh", *, unit_connection: bool = True, n: Size = "n", m: Size = "m"
) -> Cell:
    r"""Skip connections through time with delay d.

    .. math:: h^{(t)} = \sigma(W_h h^{(t-1)} + W_d h^{(t-d)} + W_x x^{(t)} + b)

    Gradients reach :math:`h^{(t-\tau)}` along paths of about
    :math:`\tau / d` steps, so they decay exponentially in :math:`\tau/d`
    rather than :math:`\tau` (seed 003, C16). ``unit_connection=False`` removes
    the length-1 connection (:math:`W_h`) altogether (C17).

    Raises
    ------
    CellDefinitionError
        If ``delay`` is not an int ≥ 2.

    References
    ----------
    T. Lin, B. G. Horne, P. Tino, C. L. Giles, "Learning long-term
    dependencies in NARX recurrent neural networks", IEEE TNN 7(6), 1996.
    Goodfellow et al., *Deep Learning*, §10.9.1.
    """
    if not is_int(delay) or delay < 2:
        raise CellDefinitionError(
            f"skip: delay must be an int >= 2 (delay 1 is the ordinary recurrence), got {delay!r}"
        )
    delay = int(delay)
    sigma, extra = _act(activation, "sigma")
    params: dict[str, Any] = {"W_h": (n, n)} if unit_connection else {}
    params.update({"W_d": (n, n), "W_x": (n, m), "b": n})
    recurrent = "W_h @ h + " if unit_connection else ""
    return Cell(
        f"skip{delay}" if unit_connection else f"skip{delay}_only",
        states={"h": n},
        inputs={"x": m},
        params=params,
        updates={"h": f"{sigma}({recurrent}W_d @ h[t-{delay}] + W_x @ x + b)"},
        activations=extra,
        description=f"Recurrence with a skip connection through time of delay {delay}.",
        references=(
            "T. Lin, B. G. Horne, P. Tino, C. L. Giles, Learning long-term dependencies in NARX recurrent neural networks, IEEE TNN 7(6), 1996.",
            "I. Goodfellow, Y. Bengio, A. Courville, Deep Learning, MIT Press 2016, section 10.9.1.",
        ),
    )


def ctrnn(
    tau: Any = "tau", dt: Any = "dt", activation: Any = "tanh", *, n: Size = "n", m: Size = "m"
) -> Cell:
    r"""Continuous-time RNN, one forward-Euler step of :math:`\tau \dot h = -h + W_h \sigma(h) + W_x x + b`.

    .. math::
        h^{(t)} = h^{(t-1)} + \frac{\Delta t}{\tau}\left(-h^{(t-1)} + W_h \sigma(h^{(t-1)}) + W_x x^{(t)} + b\right)

    ``tau`` and ``dt`` are numbers (constants) or names (scalar parameters).

    References
    ----------
    K. Funahashi, Y. Nakamura, "Approximation of dynamical systems by
    continuous time recurrent neural networks", Neural Networks 6, 1993.
    R. D. Beer, "On the dynamics of small continuous-time recurrent neural
    networks", Adaptive Behavior 3(4), 1995.
    """
    tau_text, tau_param = _scalar(tau, "tau", "ctrnn")
    dt_text, dt_param = _scalar(dt, "dt", "ctrnn")
    sigma, extra = _act(activation, "sigma")
    return Cell(
        "ctrnn",
        states={"h": n},
        inputs={"x": m},
        params={"W_h": (n, n), "W_x": (n, m), "b": n, **tau_param, **dt_param},
        updates={"h": f"h + {dt_text} / {tau_text} * (-h + W_h @ {sigma}(h) + W_x @ x + b)"},
        activations=extra,
        description="Continuous-time RNN discretised by the forward Euler method.",
        references=(
            "K. Funahashi, Y. Nakamura, Approximation of dynamical systems by continuous time recurrent neural networks, Neural Networks 6, 1993.",
            "R. D. Beer, On the dynamics of small continuous-time recurrent neural networks, Adaptive Behavior 3(4), 1995.",
        ),
    )


def indrnn(activation: Any = "relu", *, n: Size = "n", m: Size = "m") -> Cell:
    r"""Independently recurrent network: :math:`h^{(t)} = \sigma(u \circ h^{(t-1)} + W_x x^{(t)} + b)`.

    Each unit has its own scalar recurrent weight :math:`u_k`, so the step
    Jacobian is diagonal and gradients can be bounded unit by unit.

    References
    ----------
    S. Li, W. Li, C. Cook, C. Zhu, Y. Gao, "Independently recurrent neural
    network (IndRNN): building a longer and deeper RNN", CVPR 2018.
    """
    sigma, extra = _act(activation, "sigma")
    return Cell(
        "indrnn",
        states={"h": n},
        inputs={"x": m},
        params={"u": n, "W_x": (n, m), "b": n},
        updates={"h": f"{sigma}(u * h + W_x @ x + b)"},
        activations=extra,
        description="IndRNN: elementwise (diagonal) recurrence.",
        references=(
            "S. Li, W. Li, C. Cook, C. Zhu, Y. Gao, Independently recurrent neural network (IndRNN): building a longer and deeper RNN, CVPR 2018.",
        ),
    )


def minimal(input_activation: Any = "tanh", *, n: Size = "n", m: Size = "m") -> Cell:
    r"""The minimalRNN of Chen, Pennington and Schoenholz (2018).

    .. math::
        z^{(t)} &= \Phi(x^{(t)}) = \tanh(W_x x^{(t)}) \\
        u^{(t)} &= \sigma(U_h h^{(t-1)} + U_z z^{(t)} + b) \\
        h^{(t)} &= u^{(t)} \circ h^{(t-1)} + (1 - u^{(t)}) \circ z^{(t)}

    The input map :math:`\Phi` is one layer :math:`\tanh(W_x x)` here.

    References
    ----------
    M. Chen, J. Pennington, S. S. Schoenholz, "Dynamical isometry and a mean
    field theory of RNNs: gating enables signal propagation in recurrent
    neural networks", ICML 2018.
    """
    phi, extra = _act(input_activation, "Phi")
    return Cell(
        "minimal",
        states={"h": n},
        inputs={"x": m},
        params={"U_h": (n, n), "U_z": (n, n), "b": n, "W_x": (n, m)},
        intermediates={"z": f"{phi}(W_x @ x)", "u": "sigmoid(U_h @ h + U_z @ z + b)"},
        updates={"h": "u * h + (1 - u) * z"},
        activations=extra,
        description="minimalRNN: a single gate interpolating between the state and the mapped input.",
        references=(
            "M. Chen, J. Pennington, S. S. Schoenholz, Dynamical isometry and a mean field theory of RNNs: gating enables signal propagation in recurrent neural networks, ICML 2018.",
        ),
    )
