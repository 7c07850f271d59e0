r"""Why does a trained PyTorch model stop learning long dependencies? A diagnosis of its recurrent layer.

:func:`analyze` reads a ``torch.nn.RNN``, ``LSTM`` or ``GRU`` (or a model holding one, or a saved file:
:mod:`gradflow.report.loading`) with :func:`gradflow.from_torch`, runs it on input sequences, and
measures, for every layer and direction of time:

* the Jacobian chain ‖∂s(T)/∂s(T−k)‖₂ against the lag beside the bound (Pascanu et al. 2013), its
  fitted rate and regime (:func:`gradflow.regime`): how many steps the gradient needs to halve;
* the Lyapunov spectrum of its state;
* for gated cells, the gates that explain it: the fractions of saturated forget/input/output (LSTM)
  or update/reset (GRU) gates, and each unit's memory time constant :math:`-1/\log\bar f_k`
  (:math:`\bar f_k` its mean keep gate: an LSTM's forget gate, a GRU's update gate :math:`z`);

and, through the whole model, the gradient that reaches each input step from a loss
(``loss_grad``, or a loss on the last step). Each layer and direction is analysed as the single-layer
cell it is, fed the sequence it reads in the model (the layer below's output; a backward direction
reads it reversed in time), so its chain is exactly the chain of that layer's state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradflow._checks import is_int
from gradflow.errors import ShapeError, UsageError
from gradflow.report._folder import Progress, markdown_table, staged_folder

__all__ = ["Diagnosis", "GateStats", "LayerDiagnosis", "analyze"]

#: A gate below this or above one minus this is saturated.
SATURATED = 0.05

#: The keep gate of each gated kind (the product of these along time is the cell path's chain).
KEEP = {"lstm": "f", "gru": "z"}
GATES = {"lstm": ("f", "i", "o"), "gru": ("z", "r"), "rnn": ()}


@dataclass(frozen=True)
class GateStats:
    """How a gate behaved over the sequences: its mean, and the fractions near 0, near 1 and below 1/2."""

    name: str
    mean: float
    low: float
    high: float
    below_half: float


@dataclass
class LayerDiagnosis:
    r"""One layer and direction of the model.

    Attributes
    ----------
    name : str
        ``"layer 1"``, ``"layer 2, backwards"``.
    kind : {"rnn", "lstm", "gru"}
    cell, params
        The single-layer gradflow cell and its parameters.
    inputs : array (T, B, m)
        The sequence the layer reads (time reversed for a backward direction).
    chain, comparison, regime
        :func:`gradflow.jacobian_chain`, :func:`gradflow.bound_vs_measured` and :func:`gradflow.regime`.
    lyapunov : array (B, N)
        :func:`gradflow.numeric.lyapunov_spectrum`.
    trajectory : Trajectory
    gates : dict of str to GateStats
    time_constants : array (n,) or None
        :math:`-1/\log\bar f_k` per unit, in steps (``inf`` for a gate that is always 1).
    """

    name: str
    kind: str
    cell: Any
    params: dict[str, Any]
    inputs: Any
    chain: Any
    comparison: Any
    regime: Any
    lyapunov: Any
    trajectory: Any
    gates: dict[str, GateStats] = field(default_factory=dict)
    time_constants: Any = None

    @property
    def half_life(self) -> float:
        """Steps in which the gradient halves (``inf`` when it does not shrink)."""
        rate = self.regime.rate
        return math.log(2.0) / -rate if rate < 0 else math.inf

    def sentences(self) -> list[str]:
        """What this layer does to the gradient, in plain words."""
        found = self.regime
        factor = math.exp(found.rate) if found.rate > -700 else 0.0
        if found.label == "vanishing":
            head = (
                f"{self.name}: the gradient halves every {self.half_life:.3g} steps (×{factor:.3g} per step)"
            )
        elif found.label == "exploding":
            doubling = math.log(2.0) / found.rate
            head = f"{self.name}: the gradient doubles every {doubling:.3g} steps (×{factor:.3g} per step)"
        else:
            head = f"{self.name}: the gradient keeps its size (×{factor:.3g} per step)"
        bound = math.exp(found.predicted_rate) if found.predicted_rate < 700 else math.inf
        head += (
            f"; the bound allows at most ×{bound:.3g} per step"
            + (" (vanishing is guaranteed)" if found.predicted_rate < 0 else "")
            + f"; regime {found.label}, confidence {found.confidence:.2f}."
        )
        out = [head]
        keep = KEEP.get(self.kind)
        if keep is not None and keep in self.gates:
            stats = self.gates[keep]
            word = {"f": "forget", "z": "update"}[keep]
            tau = self.time_constants
            finite = tau[np.isfinite(tau)]
            median = float(np.median(tau)) if tau.size else math.nan
            out.append(
                f"{self.name}: {100 * stats.below_half:.0f}% of {word} gates ({keep}) are below 0.5 "
                f"(mean {stats.mean:.2f}; {100 * stats.low:.0f}% below {SATURATED}, {100 * stats.high:.0f}% "
                f"above {1 - SATURATED}); the units' memory time constants −1/ln {keep}̄ have median "
                f"{median:.3g} steps"
                + (f" and reach {float(finite.max()):.3g}" if finite.size else "")
                + (
                    f" ({int((~np.isfinite(tau)).sum())} units never forget)"
                    if (~np.isfinite(tau)).any()
                    else ""
                )
                + "."
            )
        return out


@dataclass
class Diagnosis:
    """What :func:`analyze` found.

    Attributes
    ----------
    model : str
        The recurrent module, as ``lstm(input=8, hidden=32, layers=2, bidirectional)``.
    where : str
        Its name in the model ("" for the module itself).
    layers : list of LayerDiagnosis
    inputs : array (T, B, m)
        The input sequences (time-major).
    gradients : Gradients
        Of the loss through the whole module (:func:`gradflow.bptt`).
    loss : str
        Which loss gradient was used.
    """

    model: str
    where: str
    layers: list[LayerDiagnosis]
    inputs: Any
    gradients: Any
    loss: str

    @property
    def input_gradient_norms(self) -> np.ndarray:
        """‖∂L/∂x(t)‖₂ per step and sequence, (T, B)."""
        return np.linalg.norm(np.asarray(self.gradients.inputs["x"]), axis=-1)

    def summary(self) -> list[str]:
        """The diagnosis in plain words: one or two sentences per layer, then the input gradient."""
        lines = [sentence for layer in self.layers for sentence in layer.sentences()]
        norms = np.median(self.input_gradient_norms, axis=1)
        last, first = float(norms[-1]), float(norms[0])
        T = norms.shape[0]
        if last > 0 and first > 0:
            lines.append(
                f"Through the whole model, the gradient reaching the first input step is 10^{math.log10(first / last):.1f} "
                f"of the gradient reaching the last (T = {T}; median over {self.input_gradient_norms.shape[1]} sequences)."
            )
        elif last > 0:
            lines.append(
                f"Through the whole model, no gradient reaches the first input step (exactly 0; T = {T})."
            )
        return lines

    def write(
        self, out: str | os.PathLike[str], *, force: bool = False, progress: bool | None = None
    ) -> Path:
        """Write the diagnosis folder: index.md (the summary and tables) and the figures.

        Raises
        ------
        UsageError
            For a folder that exists (without ``force``) or cannot be written.
        """
        return _write(self, out, force, progress)


def _layer_cell(kind: str, activation: str, n: int, m: int) -> Any:
    from gradflow.cells import elman, gru, lstm

    if kind == "rnn":
        return elman(activation, n=n, m=m)
    return lstm(n=n, m=m) if kind == "lstm" else gru(reset_after=True, n=n, m=m)


def _sequence(value: Any, batch_first: bool, size: int, what: str) -> np.ndarray:
    """A (T, B, size) float64 array from a NumPy array or tensor, (T, size) meaning one sequence."""
    from gradflow.numeric.backend import to_numpy

    if hasattr(value, "detach"):
        value = value.detach().cpu()
    try:
        array = np.asarray(to_numpy(value), dtype=float)
    except (TypeError, ValueError) as err:
        raise ShapeError(f"{what} is not an array of numbers ({type(value).__name__})") from err
    if array.ndim == 2:
        array = array[:, None, :]
    elif array.ndim == 3 and batch_first:
        array = np.swapaxes(array, 0, 1)
    if array.ndim != 3 or array.shape[-1] != size or array.shape[0] < 3 or array.shape[1] < 1:
        layout = "(B, T, size)" if batch_first else "(T, B, size)"
        raise ShapeError(
            f"{what} has shape {np.shape(value)}; it must be {layout} (or (T, size)) with size = {size} "
            "and T >= 3" + ("" if batch_first else "; pass batch_first=True (--batch-first) for (B, T, size)")
        )
    if not np.isfinite(array).all():
        raise ShapeError(f"{what} holds NaN or infinite entries")
    return np.ascontiguousarray(array)


def analyze(
    module: Any,
    inputs: Any = None,
    *,
    loss_grad: Any = None,
    batch_first: bool | None = None,
    T: int = 100,
    B: int = 8,
    seed: int = 0,
    name: str | None = None,
    arch: str | None = None,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> Diagnosis:
    r"""Diagnose the gradient flow of a trained PyTorch recurrent layer (see the module).

    Parameters
    ----------
    module : torch.nn.Module, or a path to a saved model
        An ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``; a model holding one (found by ``name``, or the
        only one); or a file: TorchScript, a pickled module, a ``state_dict`` (with ``arch`` for an
        ``nn.RNN``'s). The module is copied (float64); it is never changed.
    inputs : array or tensor, optional
        The sequences the recurrent layer reads: (T, B, input_size), or (B, T, input_size) with
        ``batch_first`` (default: the module's own ``batch_first``), or (T, input_size). Default:
        N(0, 1) sequences of ``T`` steps and ``B`` sequences, drawn from ``seed``.
    loss_grad : array or tensor, optional
        :math:`\partial L/\partial\,\mathrm{output}`, laid out like the inputs with the module's
        output size (num_directions·hidden_size). Default: a loss on the last step (an N(0, 1)
        gradient there, zero elsewhere), as for a sequence classifier.
    T, B, seed : int
        Of the default inputs and loss gradient.
    name : str, optional
        The recurrent layer's name in the model (``"rnn"``), when it holds several.
    arch : str, optional
        For a ``state_dict`` file: ``"lstm(input=8, hidden=32, layers=2, bidirectional)"``.
    out : str or os.PathLike, optional
        Also write the diagnosis folder there (:meth:`Diagnosis.write`).
    force : bool, default False
        Replace ``out`` when it exists.
    progress : bool, optional
        A progress bar on a terminal.

    Returns
    -------
    Diagnosis

    Raises
    ------
    UsageError
        For a file or model without a usable recurrent layer, or a bad ``T``, ``B`` or ``seed``.
    ShapeError
        For inputs or a loss gradient of the wrong shape, or holding NaN.
    BackendUnavailableError
        When PyTorch is not installed.

    Examples
    --------
    >>> import torch, gradflow as gf
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> found = gf.analyze(torch.nn.LSTM(3, 8), T=30, B=2)
    >>> [layer.name for layer in found.layers], found.layers[0].regime.label
    (['layer 1'], 'vanishing')
    """
    from gradflow.numeric._torch_layout import _layout, _torch
    from gradflow.report.loading import _as_plain, describe_module, find_recurrent, load_recurrent

    torch = _torch()
    for key, value, low in (("T", T, 3), ("B", B, 1), ("seed", seed, 0)):
        if not is_int(value) or value < low:
            raise UsageError(f"{key} must be an int >= {low}, got {value!r}")
    if isinstance(module, str | os.PathLike):
        where, plain = load_recurrent(module, arch=arch, module=name)
        own_batch_first = False
    elif isinstance(module, torch.nn.Module):
        where, layer = find_recurrent(module, name)
        own_batch_first = bool(getattr(layer, "batch_first", False))
        plain = _as_plain(where, layer)
    else:
        raise UsageError(
            f"analyze takes a torch.nn.Module or a path to a saved model, got {type(module).__name__}"
        )
    plain.batch_first = False  # the copy reads gradflow's time-major arrays
    layout = _layout(plain)
    first = own_batch_first if batch_first is None else bool(batch_first)
    rng = np.random.default_rng(seed)
    x = (
        _sequence(inputs, first, layout.input_size, "inputs")
        if inputs is not None
        else rng.normal(size=(T, B, layout.input_size))
    )
    T, B = int(x.shape[0]), int(x.shape[1])
    output_size = layout.directions * layout.hidden_size
    if loss_grad is None:
        grad = np.zeros((T, B, output_size))
        grad[-1] = rng.normal(size=(B, output_size))
        loss = "a loss on the last step (an N(0, 1) gradient of the output at t = T)"
    else:
        grad = _sequence(loss_grad, first, output_size, "loss_grad")
        if grad.shape[:2] != (T, B):
            raise ShapeError(f"loss_grad covers (T, B) = {grad.shape[:2]}, the inputs {(T, B)}")
        loss = "the given gradient of the output"
    from gradflow.numeric import bptt, from_torch, upstream_from_torch

    cell, params = from_torch(plain)
    upstream = upstream_from_torch(plain, grad)
    gradients = bptt(cell, params, x, upstream)
    trajectory = gradients.trajectory
    bar = Progress(layout.layers * layout.directions, "analyze", None, progress)
    layers: list[LayerDiagnosis] = []
    try:
        below = x
        for layer in range(layout.layers):
            outputs = []
            for direction in range(layout.directions):
                prefix = (f"layer{layer + 1}." if layout.layers > 1 else "") + (
                    ("fwd.", "bwd.")[direction] if layout.directions == 2 else ""
                )
                label = f"layer {layer + 1}" + (
                    ", " + ("forwards", "backwards")[direction] if layout.directions == 2 else ""
                )
                bar.step(label)
                states = trajectory[prefix + "h"]
                outputs.append(states[1:] if direction == 0 else states[:-1])
                layers.append(_layer(label, layout, prefix, params, below[::-1] if direction else below))
            below = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
    finally:
        bar.close()
    diagnosis = Diagnosis(describe_module(plain), where, layers, x, gradients, loss)
    if out is not None:
        diagnosis.write(out, force=force, progress=progress)
    return diagnosis


def _layer(
    label: str, layout: Any, prefix: str, params: Mapping[str, Any], inputs: np.ndarray
) -> LayerDiagnosis:
    from gradflow.numeric import bound_vs_measured, jacobian_chain, lyapunov_spectrum, regime

    sub = _layer_cell(layout.kind, layout.activation, layout.hidden_size, int(inputs.shape[-1]))
    own = {key[len(prefix) :]: value for key, value in params.items() if key.startswith(prefix)}
    own = {key: value for key, value in own.items() if key in sub.params}
    x = np.ascontiguousarray(inputs)
    chain = jacobian_chain(sub, own, x)
    comparison = bound_vs_measured(sub, own, x, chain=chain)
    found = regime(sub, own, x, chain=chain)
    spectrum = lyapunov_spectrum(sub, own, x)
    trajectory = chain.trajectory
    assert trajectory is not None  # jacobian_chain always keeps the trajectory it ran on
    gates: dict[str, GateStats] = {}
    for gate in GATES[layout.kind]:
        values = np.asarray(trajectory[gate])
        gates[gate] = GateStats(
            gate,
            float(values.mean()),
            float((values < SATURATED).mean()),
            float((values > 1 - SATURATED).mean()),
            float((values < 0.5).mean()),
        )
    tau = None
    keep = KEEP.get(layout.kind)
    if keep is not None:
        mean = np.asarray(trajectory[keep]).mean(axis=(0, 1))
        with np.errstate(divide="ignore"):
            tau = np.where(mean < 1.0, -1.0 / np.log(np.clip(mean, 1e-300, 1.0)), math.inf)
    return LayerDiagnosis(
        label, layout.kind, sub, own, x, chain, comparison, found, spectrum, trajectory, gates, tau
    )


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").replace("--", "-")


def _write(diagnosis: Diagnosis, out: str | os.PathLike[str], force: bool, progress: bool | None) -> Path:
    from gradflow import plot as gfplot

    layers = diagnosis.layers
    bar = Progress(3 + sum(1 for layer in layers if layer.kind != "rnn"), "diagnosis", None, progress)
    T, B = int(diagnosis.inputs.shape[0]), int(diagnosis.inputs.shape[1])
    settings = f"T = {T}, B = {B}"
    try:
        with staged_folder(out, force, UsageError) as folder:
            (folder / "figures").mkdir()
            bar.step("chain norms")
            series = {layer.name: (layer.comparison, layer.regime) for layer in layers}
            figure = gfplot.chain_norms(
                series, title=f"Chain norms of each layer of {diagnosis.model} ({settings})"
            )
            gfplot.save(figure, folder / "figures" / "chain-norms.png")
            bar.step("input gradient")
            figure = gfplot.gradient_per_step(
                {"the model": diagnosis.gradients},
                title=f"Gradient reaching each input step of {diagnosis.model} ({settings})",
            )
            gfplot.save(figure, folder / "figures" / "input-gradient.png")
            bar.step("Lyapunov spectra")
            figure = gfplot.lyapunov(
                {layer.name: layer.lyapunov for layer in layers},
                title=f"Lyapunov spectra of each layer of {diagnosis.model} ({settings})",
            )
            gfplot.save(figure, folder / "figures" / "lyapunov.png")
            gate_figures = []
            for layer in layers:
                if layer.kind == "rnn":
                    continue
                bar.step(f"gates: {layer.name}")
                name = f"gates-{_slug(layer.name)}.png"
                figure = gfplot.gates(
                    layer.trajectory,
                    [*GATES[layer.kind], *layer.cell.states],
                    title=f"Gates and states of {layer.name} of {diagnosis.model}, sequence 0",
                )
                gfplot.save(figure, folder / "figures" / name)
                gate_figures.append((layer.name, name))
            _index(folder, diagnosis, gate_figures)
    finally:
        bar.close()
    return Path(out)


def _index(folder: Path, diagnosis: Diagnosis, gate_figures: list[tuple[str, str]]) -> None:
    rows = []
    for layer in diagnosis.layers:
        found = layer.regime
        rows.append(
            [
                layer.name,
                found.label,
                f"{found.rate:+.4f} ± {found.standard_error:.1e}",
                f"{found.predicted_rate:+.4f}",
                f"{layer.half_life:.3g}" if math.isfinite(layer.half_life) else "—",
                f"{found.confidence:.3f}",
                "yes" if found.consistent else "NO",
                f"{float(np.median(layer.lyapunov[:, 0])):+.4f}",
            ]
        )
    header = [
        "layer",
        "regime",
        "measured rate",
        "bound's rate",
        "halves every (steps)",
        "confidence",
        "within the bound",
        "λ₁",
    ]
    gate_rows = []
    for layer in diagnosis.layers:
        for stats in layer.gates.values():
            gate_rows.append(
                [
                    layer.name,
                    stats.name,
                    f"{stats.mean:.3f}",
                    f"{100 * stats.low:.1f}%",
                    f"{100 * stats.high:.1f}%",
                    f"{100 * stats.below_half:.1f}%",
                ]
            )
    tau_rows = []
    for layer in diagnosis.layers:
        if layer.time_constants is None:
            continue
        tau = layer.time_constants
        quantiles = np.quantile(tau, [0.1, 0.5, 0.9])
        tau_rows.append([layer.name, *(f"{q:.3g}" for q in quantiles), f"{float(np.max(tau)):.3g}"])
    lines = [
        f"# Gradient flow in {diagnosis.model}" + (f" (`{diagnosis.where}`)" if diagnosis.where else ""),
        "",
        *(f"- {sentence}" for sentence in diagnosis.summary()),
        "",
        f"Inputs: {diagnosis.inputs.shape[0]} steps, {diagnosis.inputs.shape[1]} sequences; loss: {diagnosis.loss}. "
        "Rates are per step (natural log) of ‖∂s(T)/∂s(T−k)‖₂ against k, fitted by gf.regime; the bound's "
        "rate is the γ-bound of one step (Pascanu et al. 2013), which no measured rate may exceed. Each "
        "layer and direction is analysed as the single-layer cell it is, on the sequence it reads in the "
        "model (a backward direction reads it reversed in time).",
        "",
        "## Regimes",
        "",
        markdown_table(header, rows),
        "",
        "![chain norms](figures/chain-norms.png)",
        "",
        "## The gradient reaching each input step",
        "",
        "![input gradient](figures/input-gradient.png)",
        "",
    ]
    if gate_rows:
        lines += [
            "## Gates",
            "",
            f"Saturated: below {SATURATED} or above {1 - SATURATED}, over every step, sequence and unit.",
            "",
            markdown_table(["layer", "gate", "mean", "near 0", "near 1", "below 0.5"], gate_rows),
            "",
            "Memory time constants −1/ln(mean keep gate) per unit, in steps (an LSTM's forget gate, a GRU's "
            "update gate z):",
            "",
            markdown_table(["layer", "10%", "median", "90%", "largest"], tau_rows),
            "",
        ]
        lines += [f"![gates of {name}](figures/{file})" for name, file in gate_figures] + [""]
    lines += ["## Lyapunov spectra", "", "![Lyapunov spectra](figures/lyapunov.png)", ""]
    (folder / "index.md").write_text("\n".join(lines), encoding="utf-8")
