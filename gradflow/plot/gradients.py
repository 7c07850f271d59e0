r"""What BPTT delivers: the gradient that reaches each input step, and how truncation changes it.

:func:`gradient_per_step` draws :math:`\lVert\partial L/\partial x^{(t)}\rVert` against the
distance from the loss: how much of the gradient reaches a token :math:`k` steps back (the
long-distance dependencies of Linzen et al. 2016, seed 000). :func:`truncation` compares the
strategies of d2l §9.7: regular truncation after :math:`\tau` steps is biased; randomized
truncation (Tallec and Ollivier 2017) is unbiased, and pays with variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gradflow._checks import is_int
from gradflow.errors import PlotError
from gradflow.numeric.gradients import Gradients
from gradflow.plot._style import (
    as_series,
    band,
    check_options,
    colour,
    figure_axes,
    finite_or_none,
    legend,
    settings,
    to_numpy,
    wrong_kind,
)
from gradflow.symbolic.strategies import Full, Randomized, Truncated

__all__ = ["gradient_per_step", "truncation"]


def gradient_per_step(
    gradients: Any,
    *,
    input: str | None = None,
    loss_at: int | None = None,
    quantiles: tuple[float, float] = (0.1, 0.9),
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw :math:`\log_{10}\lVert\partial L/\partial x^{(t)}\rVert_2` against :math:`k = t_L - t`, the steps back from the loss.

    Parameters
    ----------
    gradients : Gradients or dict of label -> Gradients
        Results of :func:`gradflow.bptt` (several cells side by side).
    input : str, optional
        The input whose gradient is drawn; default the cell's only input.
    loss_at : int, optional
        :math:`t_L`, the step whose loss the upstream gradient came from (default ``T``: a loss on
        the last step, as for a sequence classifier). Steps after it are not drawn.
    quantiles : (low, high), default (0.1, 0.9)
        The band over the batch around the median.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        One line per series (median over the batch, band of quantiles); the legend says how many
        decades the median falls from :math:`k = 0` to the largest :math:`k`. A gradient that is
        exactly 0 leaves a gap.

    Raises
    ------
    PlotError
        For something that is not a Gradients, an input the cell lacks (or no ``input`` for a
        cell with several), a ``loss_at`` outside ``1..T``, or bad ``quantiles``.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": 0.5 * np.eye(2), "W_x": np.ones((2, 1)), "b": np.zeros(2)}
    >>> upstream = {"h": np.zeros((6, 1, 2))}
    >>> upstream["h"][-1] = 1.0
    >>> grads = gf.bptt(gf.cells.elman("identity"), params, np.zeros((6, 1, 1)), upstream)
    >>> line = gf.plot.gradient_per_step(grads).axes[0].get_lines()[0]
    >>> bool(np.allclose(np.diff(line.get_ydata()), np.log10(0.5)))  # W_h = I/2: halved every step back
    True
    """
    low, high = check_options(quantiles)
    series = as_series(gradients, (Gradients,), "a Gradients (gf.bptt's result)")
    figure, (axes,) = figure_axes(ax)
    for index, (label, grads) in enumerate(series.items()):
        if not isinstance(grads, Gradients):
            raise wrong_kind(label, grads, "a Gradients", "give gf.bptt(...)")
        name = _input_name(label, grads, input)
        array = to_numpy(grads.inputs[name])  # (T, B, m)
        T = array.shape[0]
        last = T if loss_at is None else loss_at
        if not is_int(last) or not 1 <= int(last) <= T:
            raise PlotError(f"loss_at must be a step in 1..T = {T} (of {label!r}); got {loss_at!r}")
        norms = np.linalg.norm(array[: int(last)], axis=-1)  # (t_L, B), t = 1..t_L
        with np.errstate(divide="ignore"):
            logs = np.log10(norms)[::-1]  # k = 0 .. t_L - 1
        k = np.arange(logs.shape[0])
        median, lower, upper = band(logs, (low, high), axis=1)
        text = label
        if np.isfinite(median[0]) and np.isfinite(median[-1]) and k.size > 1:
            text += f": {median[-1] - median[0]:+.1f} decades over {k[-1]} steps"
        tint = colour(index)
        axes.plot(k, finite_or_none(median), "-", color=tint, lw=1.8, label=text)
        if logs.shape[1] > 1:
            axes.fill_between(k, finite_or_none(lower), finite_or_none(upper), color=tint, alpha=0.18, lw=0)
    axes.set_xlabel(r"steps back from the loss, $k = t_L - t$")
    axes.set_ylabel(r"$\log_{10}\,\|\partial L/\partial x^{(t)}\|_2$")
    head = "Gradient reaching each input step" + settings([g.trajectory for g in series.values()])
    axes.set_title(title if title is not None else head, loc="left", wrap=True)
    axes.grid(True, alpha=0.3)
    legend(axes)
    return figure


def _input_name(label: str, grads: Gradients, name: str | None) -> str:
    names = list(grads.inputs)
    if name is None:
        if len(names) != 1:
            raise PlotError(f"the cell of {label!r} has inputs {', '.join(names)}; choose one with input=")
        return names[0]
    if name not in names:
        raise PlotError(f"the cell of {label!r} has no input {name!r}; it has {', '.join(names) or 'none'}")
    return name


def truncation(
    gradients: Sequence[Gradients],
    *,
    param: str | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw the error of truncated and randomized BPTT against the full gradient (two panels).

    Parameters
    ----------
    gradients : sequence of Gradients
        Results of :func:`gradflow.bptt` on one simulation and one upstream gradient, with
        different ``truncation=``: exactly one ``Full()`` (the reference), any number of
        ``Truncated(tau)``, and any number of ``Randomized(pi, seed)`` draws (several seeds per
        ``pi`` show the spread).
    param : str, optional
        The parameter whose gradient is compared; default all of them together.
    title : str, optional
    ax : two matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: the relative error :math:`\lVert g_\tau - g\rVert/\lVert g\rVert` of regular
        truncation against :math:`\tau` -- its bias (no spread: it is deterministic). Right, for
        randomized truncation against :math:`\pi`: the relative error of each draw (the spread)
        and of their mean (the bias, which only the number of draws limits: the estimator is
        unbiased). An error that is exactly 0 is drawn at :math:`10^{-17}`.

    Raises
    ------
    PlotError
        For something that is not a Gradients, no or several ``Full()`` gradients, neither a
        truncated nor a randomized one, gradients of different simulations, a ``param`` they
        lack, or a full gradient that is 0.

    References
    ----------
    A. Zhang et al., *Dive into Deep Learning*, §9.7. C. Tallec, Y. Ollivier, "Unbiasing
    truncated backpropagation through time", arXiv:1705.08209, 2017.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> params = gf.init_params(cell, sizes={"n": 4, "m": 2}, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(12, 2, 2))
    >>> up = {"h": np.ones((12, 2, 4))}
    >>> runs = [gf.bptt(cell, params, x, up, truncation=s) for s in (gf.Full(), gf.Truncated(2), gf.Truncated(4))]
    >>> figure = gf.plot.truncation(runs, param="W_h")
    >>> len(figure.axes[0].get_lines()[0].get_xdata())
    2
    """
    if isinstance(gradients, Gradients) or not isinstance(gradients, Sequence) or isinstance(gradients, str):
        raise PlotError(
            "truncation takes a list of gf.bptt results with different truncation= (one Full()); "
            f"got {type(gradients).__name__}"
        )
    full: list[Gradients] = []
    cut: dict[int, Gradients] = {}
    drawn: dict[float, list[Gradients]] = {}
    for index, grads in enumerate(gradients):
        if not isinstance(grads, Gradients):
            raise wrong_kind(f"gradients[{index}]", grads, "a Gradients", "give gf.bptt(...)")
        strategy = grads.strategy
        if isinstance(strategy, Full):
            full.append(grads)
        elif isinstance(strategy, Truncated):
            cut[int(strategy.tau)] = grads
        elif isinstance(strategy, Randomized):
            drawn.setdefault(float(strategy.pi), []).append(grads)
        else:
            raise PlotError(
                f"gradients[{index}] does not say which truncation computed it (made by gf.bptt?)"
            )
    if len(full) != 1:
        raise PlotError(f"give exactly one gradient computed with Full() (the reference); got {len(full)}")
    if not cut and not drawn:
        raise PlotError(
            "nothing to compare: add gradients computed with Truncated(tau) or Randomized(pi, seed)"
        )
    reference = full[0]
    names = _params(reference, param)
    _same_simulation(reference, [*cut.values(), *(g for draws in drawn.values() for g in draws)])
    g = _flat(reference, names)
    scale = float(np.linalg.norm(g))
    if scale == 0.0:
        raise PlotError("the full gradient is 0: relative errors are undefined")

    def error(grads: Gradients) -> float:
        return float(np.linalg.norm(_flat(grads, names) - g)) / scale

    figure, (left, right) = figure_axes(ax, panels=2, size=(5.2, 4.4))
    floor = 1e-17
    if cut:
        taus = sorted(cut)
        errors = np.array([error(cut[tau]) for tau in taus])
        left.plot(
            taus, np.maximum(errors, floor), "-o", color=colour(0), lw=1.6, ms=4, label="Truncated($\\tau$)"
        )
        left.set_yscale("log")
        left.legend(loc="best", frameon=False, fontsize="small")
    else:
        left.text(0.5, 0.5, "no Truncated(tau) gradients", ha="center", va="center", transform=left.transAxes)
    left.set_xlabel(r"truncation depth $\tau$ (steps)")
    left.set_ylabel(r"relative error $\|g - g_{\mathrm{full}}\| / \|g_{\mathrm{full}}\|$")
    left.set_title("regular truncation: bias", loc="left", wrap=True)
    left.grid(True, alpha=0.3)
    if drawn:
        pis = sorted(drawn)
        for j, pi in enumerate(pis):
            each = np.maximum([error(d) for d in drawn[pi]], floor)
            offsets = (np.arange(each.size) - (each.size - 1) / 2) * (0.25 / max(each.size, 1))
            spread = np.diff(pis).min() if len(pis) > 1 else 0.1
            right.plot(
                pi + offsets * spread,
                each,
                "o",
                color=colour(1),
                ms=3,
                alpha=0.6,
                label="each draw (spread)" if j == 0 else "_nolegend_",
            )
        means = [
            max(
                float(np.linalg.norm(np.mean([_flat(d, names) for d in drawn[pi]], axis=0) - g)) / scale,
                floor,
            )
            for pi in pis
        ]
        counts = sorted({len(drawn[pi]) for pi in pis})
        right.plot(
            pis,
            means,
            "-s",
            color=colour(2),
            lw=1.6,
            ms=5,
            label=f"mean of {'/'.join(map(str, counts))} draws (bias + error of the mean)",
        )
        right.set_yscale("log")
        right.legend(loc="best", frameon=False, fontsize="small")
    else:
        right.text(
            0.5, 0.5, "no Randomized(pi) gradients", ha="center", va="center", transform=right.transAxes
        )
    right.set_xlabel(r"$\pi$, the probability a step passes the gradient on")
    right.set_ylabel("relative error")
    right.set_title("randomized truncation: unbiased, with spread", loc="left", wrap=True)
    right.grid(True, alpha=0.3)
    trajectory = reference.trajectory
    which = param if param is not None else "every parameter"
    figure.suptitle(
        title
        if title is not None
        else f"BPTT strategies against the full gradient of {which} ({trajectory.cell.name}, T = {trajectory.T}, B = {trajectory.B})"
    )
    return figure


def _params(reference: Gradients, param: str | None) -> list[str]:
    if param is None:
        return list(reference)
    if param not in reference:
        raise PlotError(f"the gradients have no parameter {param!r}; they have {', '.join(reference)}")
    return [param]


def _flat(grads: Gradients, names: list[str]) -> np.ndarray:
    return np.concatenate([to_numpy(grads[name]).ravel() for name in names])


def _same_simulation(reference: Gradients, others: list[Gradients]) -> None:
    """Every gradient must come from the reference's simulation (same cell, inputs and parameters)."""
    mine = reference.trajectory
    states = list(mine.cell.states)
    for grads in others:
        theirs = grads.trajectory
        if (
            theirs.cell.name != mine.cell.name
            or (theirs.T, theirs.B) != (mine.T, mine.B)
            or any(not np.array_equal(to_numpy(theirs[s]), to_numpy(mine[s])) for s in states)
        ):
            raise PlotError(
                "the gradients come from different simulations (cell, inputs or parameters differ); "
                "compute every strategy on the same cell, params, inputs and upstream"
            )
