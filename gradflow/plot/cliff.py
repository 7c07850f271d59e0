r"""The cliff: a loss surface over two parameters, with gradient-descent paths with and without clipping.

Pascanu, Mikolov and Bengio (2013, fig. 6) and Goodfellow et al. (*Deep Learning*, §10.11.1): the
loss of a one-unit recurrent network over its weight and bias has flat plains cut by a steep
wall, where a bifurcation of the dynamics changes the final state abruptly. A gradient step on
the wall is huge and throws the parameters far away; rescaling the gradient to a maximal norm
keeps the step short. The surface is a :class:`~gradflow.numeric.LossSurface`, the paths are
:class:`~gradflow.numeric.Descent` s, both computed with gradflow (the gradients by
:func:`gradflow.bptt`, clipped by its ``clip_norm``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradflow.errors import PlotError
from gradflow.numeric.descent import Descent, LossSurface
from gradflow.plot._style import as_series, colour, figure_axes, legend, to_numpy, wrong_kind
from gradflow.plot._style import title as title_

__all__ = ["cliff"]


def cliff(
    surface: LossSurface,
    paths: Any = None,
    *,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw :math:`\log_{10} L` over two parameters and gradient-descent paths across it.

    Parameters
    ----------
    surface : LossSurface
        :func:`gradflow.numeric.loss_surface`'s result.
    paths : Descent or dict of label -> Descent, optional
        :func:`gradflow.numeric.gradient_descent` results that train the surface's two
        parameters (e.g. ``{"no clipping": plain, "clip_norm = 1": clipped}``).
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        The surface as a colour map of :math:`\log_{10} L` (grey where the simulation
        overflowed or the loss is 0; the scale starts at the 1st percentile, so that a few points
        on a valley of nearly zero loss do not take it all), the paths as lines from a circle (start) to a cross (end);
        the legend gives each path's loss before and after, and how many of its steps were
        clipped. A path that leaves the surface's range is cut at its edge.

    Raises
    ------
    PlotError
        For a surface or path of another kind, or a path that does not train exactly the
        surface's two parameters.

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training recurrent neural networks",
    ICML 2013, fig. 6. I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, fig. 10.17.

    Examples
    --------
    >>> import numpy as np, gradflow as gf
    >>> params = {"W_h": np.ones((1, 1)), "W_x": np.zeros((1, 1)), "b": np.zeros(1)}
    >>> x, h0, vary = np.zeros((10, 1, 1)), {"h": np.full(1, 0.5)}, {"W_h": [0.0, 1.0, 2.0], "b": [-1.0, 0.0, 1.0]}
    >>> surface = gf.numeric.loss_surface(gf.cells.elman(), params, x, 0.5, vary, initial=h0)
    >>> path = gf.numeric.gradient_descent(gf.cells.elman(), params, x, 0.5, train=["W_h", "b"],
    ...                                    learning_rate=0.5, steps=5, initial=h0)
    >>> figure = gf.plot.cliff(surface, {"plain": path})
    >>> figure.axes[0].get_lines()[0].get_label()
    'plain: loss 0.0191 -> 0.0554'
    """
    if not isinstance(surface, LossSurface):
        raise wrong_kind("surface", surface, "a LossSurface", "give gf.numeric.loss_surface(...)")
    series = {} if paths is None else as_series(paths, (Descent,), "a Descent (gf.numeric.gradient_descent)")
    x, y, loss = to_numpy(surface.x), to_numpy(surface.y), to_numpy(surface.loss)
    columns = {}
    for label, path in series.items():
        if not isinstance(path, Descent):
            raise wrong_kind(label, path, "a Descent", "give gf.numeric.gradient_descent(...)")
        if sorted(path.names) != sorted(surface.names) or to_numpy(path.params).shape[1] != 2:
            raise PlotError(
                f"the path {label!r} trains {', '.join(path.names)}; the surface varies "
                f"{' and '.join(surface.names)}: train exactly those two (one entry each)"
            )
        columns[label] = [path.names.index(name) for name in surface.names]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where((loss > 0) & np.isfinite(loss), np.log10(np.where(loss > 0, loss, 1.0)), np.nan)
    from matplotlib import colormaps

    figure, (axes,) = figure_axes(ax, size=(8.4, 5.2))
    finite = logs[np.isfinite(logs)]
    # a few grid points on a valley where L is nearly 0 (1e-30) would take the whole colour scale:
    # the scale spans the 1st percentile to the largest value, and lower values take its end
    low = float(np.percentile(finite, 1.0)) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    image = axes.pcolormesh(
        x,
        y,
        np.ma.masked_invalid(logs),
        shading="nearest",
        cmap=colormaps["cividis"].with_extremes(bad="#BBBBBB"),
        vmin=low,
        vmax=high if high > low else low + 1.0,
    )
    bar = figure.colorbar(
        image,
        ax=axes,
        fraction=0.05,
        pad=0.02,
        extend="min" if finite.size and finite.min() < low else "neither",
    )
    bar.set_label(r"$\log_{10} L$")
    for index, (label, path) in enumerate(series.items()):
        points = to_numpy(path.params)[:, columns[label]]
        losses = to_numpy(path.loss)
        clipped = int(np.sum(to_numpy(path.clipped)))
        text = f"{label}: loss {losses[0]:.3g} -> {losses[-1]:.3g}"
        if path.clip_norm is not None:
            text += f" ({clipped} of {len(losses) - 1} steps clipped)"
        tint = colour(index + 1)
        axes.plot(points[:, 0], points[:, 1], "-", color=tint, lw=1.8, marker=".", ms=4, label=text)
        axes.plot(points[:1, 0], points[:1, 1], "o", color=tint, ms=7, mec="white", label="_nolegend_")
        axes.plot(points[-1:, 0], points[-1:, 1], "X", color=tint, ms=9, mec="white", label="_nolegend_")
    axes.set_xlim(float(x.min()), float(x.max()))
    axes.set_ylim(float(y.min()), float(y.max()))
    axes.set_xlabel(f"${_math(surface.names[0])}$")
    axes.set_ylabel(f"${_math(surface.names[1])}$")
    head = f"Loss surface of the last state {surface.state}$^{{({surface.T})}}$ and gradient descent"
    title_(figure, axes, title if title is not None else head, own=ax is None)
    if series:
        legend(axes, below=True)
    return figure


def _math(name: str) -> str:
    head, _, tail = name.partition("_")
    return f"{head}_{{{tail}}}" if tail else head
