"""gates (trajectory panels), cliff (surface and descent paths) and save (atomic, deterministic files)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import gradflow as gf
from gradflow.errors import PlotError
from tests.numeric.test_descent import CLIFF


@pytest.fixture(scope="module")
def lstm_trajectory():
    cell = gf.cells.lstm()
    params = gf.init_params(cell, sizes={"n": 3, "m": 2}, seed=0)
    return gf.simulate(cell, params, np.random.default_rng(0).normal(size=(12, 2, 2)))


def test_gates_heatmaps_are_the_trajectory(lstm_trajectory, rendered):
    figure = gf.plot.gates(lstm_trajectory, sequence=1)
    rendered(figure)
    names = ["f", "i", "o", "c_tilde", "c", "h"]
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == len(names)
    for ax, name in zip(panels, names, strict=True):
        image = ax.images[0]
        np.testing.assert_array_equal(image.get_array(), lstm_trajectory[name][:, 1, :].T)
        gate = name in ("f", "i", "o")
        assert image.get_clim() == ((0.0, 1.0) if gate else image.get_clim())
        if not gate:
            low, high = image.get_clim()
            assert low == -high
    # states start at t = 0 (their initial value), gates at t = 1
    assert panels[4].images[0].get_extent()[0] == -0.5 and panels[0].images[0].get_extent()[0] == 0.5


def test_gates_lines(lstm_trajectory, rendered):
    figure = gf.plot.gates(lstm_trajectory, ["f", "c"], kind="lines")
    rendered(figure)
    top, bottom = figure.axes
    assert len(top.get_lines()) == 3
    np.testing.assert_array_equal(top.get_lines()[2].get_ydata(), lstm_trajectory["f"][:, 0, 2])
    np.testing.assert_array_equal(bottom.get_lines()[0].get_xdata(), np.arange(13))


def test_gates_errors(lstm_trajectory):
    with pytest.raises(PlotError, match="not a Trajectory"):
        gf.plot.gates({"f": np.ones((3, 1, 1))})
    with pytest.raises(PlotError, match="no signal 'z'"):
        gf.plot.gates(lstm_trajectory, ["z"])
    with pytest.raises(PlotError, match=r"sequence must be an int in 0\.\.1"):
        gf.plot.gates(lstm_trajectory, sequence=2)
    with pytest.raises(PlotError, match="kind must be"):
        gf.plot.gates(lstm_trajectory, kind="bars")
    with pytest.raises(PlotError, match="names is empty"):
        gf.plot.gates(lstm_trajectory, [])
    with pytest.raises(PlotError, match="2 matplotlib Axes"):
        gf.plot.gates(lstm_trajectory, ["f", "c"], ax=Figure().subplots())


def test_gates_into_the_callers_axes_keep_the_callers_title(lstm_trajectory):
    figure = Figure()
    figure.suptitle("the caller's figure")
    top, bottom = figure.subplots(2, 1)
    assert gf.plot.gates(lstm_trajectory, ["f", "c"], ax=[top, bottom], title="gates") is figure
    assert figure.get_suptitle() == "the caller's figure"
    assert top.get_title(loc="left") == "gates" and not bottom.get_title(loc="left")
    own = gf.plot.gates(lstm_trajectory, ["f"], title="mine")
    assert own.get_suptitle() == "mine" and not own.axes[0].get_title(loc="left")


@pytest.fixture(scope="module")
def cliff_setting():
    return np.zeros((20, 1, 1)), {"h": np.full((1, 1), 0.5)}


def test_cliff_figure_draws_the_surface_and_the_paths(cliff_setting, rendered):
    x, h0 = cliff_setting
    params = {"w": np.array(1.0), "b": np.array(0.0)}
    surface = gf.numeric.loss_surface(
        CLIFF, params, x, 0.7, {"w": np.linspace(2, 8, 7), "b": np.linspace(-5, -1, 5)}, initial=h0
    )
    start = {"w": np.array(5.5), "b": np.array(-3.0)}
    paths = {
        "plain": gf.numeric.gradient_descent(
            CLIFF, start, x, 0.7, train=["b", "w"], learning_rate=0.1, steps=4, initial=h0
        ),
        "clipped": gf.numeric.gradient_descent(
            CLIFF, start, x, 0.7, train=["w", "b"], learning_rate=0.1, steps=4, clip_norm=0.5, initial=h0
        ),
    }
    figure = gf.plot.cliff(surface, paths)
    rendered(figure)
    axes = figure.axes[0]
    mesh = axes.collections[0].get_array()
    np.testing.assert_allclose(np.ma.getdata(mesh).ravel(), np.log10(surface.loss).ravel())
    plain = axes.get_lines()[0]
    # a path that trains (b, w) is drawn in the surface's (w, b) order
    np.testing.assert_allclose(plain.get_xdata(), paths["plain"].params[:, 1])
    np.testing.assert_allclose(plain.get_ydata(), paths["plain"].params[:, 0])
    assert "steps clipped" in axes.get_lines()[3].get_label()


def test_cliff_errors(cliff_setting):
    x, h0 = cliff_setting
    params = {"w": np.array(1.0), "b": np.array(0.0)}
    surface = gf.numeric.loss_surface(CLIFF, params, x, 0.7, {"w": [1, 2], "b": [0, 1]}, initial=h0)
    with pytest.raises(PlotError, match="not a LossSurface"):
        gf.plot.cliff({"loss": 1})
    path = gf.numeric.gradient_descent(
        CLIFF, params, x, 0.7, train=["w"], learning_rate=0.1, steps=2, initial=h0
    )
    with pytest.raises(PlotError, match="train exactly those two"):
        gf.plot.cliff(surface, {"p": path})
    with pytest.raises(PlotError, match="not a Descent"):
        gf.plot.cliff(surface, {"p": surface})


def test_save_is_atomic_deterministic_and_refuses_to_overwrite(tmp_path, lstm_trajectory):
    figure = gf.plot.gates(lstm_trajectory, ["f"])
    for suffix in (".png", ".svg", ".pdf"):
        path = gf.plot.save(figure, tmp_path / f"a{suffix}")
        first = path.read_bytes()
        gf.plot.save(figure, path, overwrite=True)
        assert path.read_bytes() == first  # no dates or random ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.png", "a.svg"]  # no temporaries left
    with pytest.raises(PlotError, match="already exists"):
        gf.plot.save(figure, tmp_path / "a.png")
    with pytest.raises(PlotError, match=r"must end in \.png, \.svg or \.pdf"):
        gf.plot.save(figure, tmp_path / "a.jpg")
    with pytest.raises(PlotError, match="does not exist"):
        gf.plot.save(figure, tmp_path / "missing" / "a.png")
    with pytest.raises(PlotError, match="takes a matplotlib Figure"):
        gf.plot.save("figure", tmp_path / "b.png")
    with pytest.raises(PlotError, match="dpi must be"):
        gf.plot.save(figure, tmp_path / "b.png", dpi=0)
    assert not (tmp_path / "b.png").exists()


def test_importing_gradflow_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, gradflow; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
