r"""Referees for the numeric backend's ``simulate`` and ``bptt``.

The loss is the linear functional of the trajectory that ``upstream`` stands for,

.. math:: L = \sum_{t=1}^{T} \sum_b \langle g_b^{(t)}, s_b^{(t)} \rangle,

over every node ``s`` given an upstream ``g`` (states, gates, outputs), so ``bptt`` must return
:math:`dL/d\theta`, :math:`dL/dx^{(t)}` and :math:`dL/ds^{(0)}`. The referees:

* central finite differences of ``L`` (from ``simulate`` alone) for every built-in cell, the
  combinators and a user-defined cell;
* a brute-force referee of truncation that re-simulates one window per loss step and never
  touches the truncation machinery (see :func:`windowed_truncated_gradient`);
* the sample mean of the randomized estimator over many seeds, within five standard errors;
* clipping against the unclipped gradients; array_api_strict against NumPy; error messages.
"""

from __future__ import annotations

import array_api_strict
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from randomized_draws import seed_for_each_pattern

import gradflow as gf
from gradflow.numeric.backend import to_numpy
from gradflow.numeric.bptt import clip_by_norm, clip_by_value, global_norm
from gradflow.numeric.init import init_params

C = gf.cells
N, M, T, B = 3, 2, 4, 2
STEP = 1e-6  # central differences: truncation error ~ STEP**2, rounding ~ 1e-16 * |L| / STEP ~ 1e-9
RTOL, ATOL = 1e-6, 1e-8


def gated_cell() -> gf.Cell:
    """A user cell: a gate over a concatenation, recurrence through an intermediate, two inputs,
    a scalar parameter and an output."""
    return gf.Cell(
        "gated",
        states={"h": "n"},
        inputs={"x": "m", "u": "n"},
        params={"W": ("n", "n"), "V": ("n", "n + m"), "U": ("n", "m"), "c": "n", "b": "n", "beta": ()},
        intermediates={"a": "softsign(h)", "g": "sigmoid(V @ [h, x] + c)"},
        updates={"h": "g * h + beta * (1 - g) * tanh(W @ a + U @ x + b) + 0.5 * u"},
        outputs={"y": "elu(h) * g"},
    )


CELLS = {
    "elman": C.elman,
    "jordan": C.jordan,
    "lstm": C.lstm,
    "lstm1997": lambda: C.lstm(forget_gate=False),
    "lstm_peephole": lambda: C.lstm(peephole=True),
    "gru": C.gru,
    "gru_reset_after": lambda: C.gru(reset_after=True),
    "leaky": C.leaky,
    "skip2": C.skip,
    "skip3": lambda: C.skip(3),
    "ctrnn": C.ctrnn,
    "indrnn": C.indrnn,
    "minimal": C.minimal,
    "stack": lambda: C.stack([C.elman(), C.gru()]),
    "bidirectional": lambda: C.bidirectional(C.elman()),
    "stack_bidirectional": lambda: C.stack([C.bidirectional(C.elman()), C.elman()]),
    "gated": gated_cell,
    "bidirectional_skip": lambda: C.bidirectional(C.skip(2)),
    "stack_skip_lstm": lambda: C.stack([C.skip(3), C.lstm(peephole=True)]),
}


def concrete(name: str, n: int = N, m: int = M) -> gf.Cell:
    cell = CELLS[name]()
    return cell.with_sizes(**{s.name: m if s.name == "m" else n for s in cell.size_symbols})


def depth(cell: gf.Cell, state: str) -> int:
    return max(cell.delays(state), default=1)


def make_problem(cell: gf.Cell, seed: int = 0, steps: int = T, batch: int = B):
    """Parameters (nonzero biases), inputs, initial states and an upstream on every node."""
    rng = np.random.default_rng(seed)
    values = {"beta": 0.8} if "beta" in cell.params else None
    params = init_params(cell, seed=seed, gain=1.3, values=values)
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    inputs = {name: rng.standard_normal((steps, batch, int(size))) for name, size in cell.inputs.items()}
    initial = {s: rng.standard_normal((depth(cell, s), batch, int(n))) for s, n in cell.states.items()}
    trajectory = gf.simulate(cell, params, inputs, initial)
    upstream = {
        name: rng.standard_normal((steps, batch, trajectory[name].shape[-1])) for _, name in cell.order
    }
    return params, inputs, initial, upstream


def at_steps(cell: gf.Cell, trajectory, name: str) -> np.ndarray:
    """A node's values at times 1..T, (T, B, size)."""
    values = to_numpy(trajectory[name])
    if name in cell.states:
        return values[:-1] if name in cell.backward else values[1:]
    return values


def loss(cell, params, inputs, initial, upstream) -> float:
    trajectory = gf.simulate(cell, params, inputs, initial)
    return float(sum(np.sum(at_steps(cell, trajectory, k) * g) for k, g in upstream.items()))


def some_entries(shape, rng, count: int = 6) -> list[tuple[int, ...]]:
    every = list(np.ndindex(*shape))
    chosen = rng.choice(len(every), size=min(count, len(every)), replace=False)
    return [every[k] for k in sorted(chosen)]


def central_difference(f, array: np.ndarray, index: tuple[int, ...]) -> float:
    plus, minus = np.array(array, dtype=float), np.array(array, dtype=float)
    plus[index] += STEP
    minus[index] -= STEP
    return (f(plus) - f(minus)) / (2 * STEP)


def as_history(gradient) -> np.ndarray:
    """An initial-state gradient as (d, B, n), oldest first, whatever d is."""
    array = to_numpy(gradient)
    return array if array.ndim == 3 else array[None, ...]


# -- finite differences ---------------------------------------------------------------------------


def mismatches(cell, params, inputs, initial, upstream, count=6, seed=1):
    """Entries where bptt and central differences of ``L`` disagree: up to ``count`` per array."""
    grads = gf.bptt(cell, params, inputs, upstream, initial=initial)
    assert set(grads) == set(cell.params)
    rng = np.random.default_rng(seed)
    checks = []
    for key, value in params.items():
        for index in some_entries(np.shape(value), rng, count):
            fd = central_difference(
                lambda v, k=key: loss(cell, {**params, k: v}, inputs, initial, upstream), value, index
            )
            checks.append((f"param {key}{index}", fd, float(to_numpy(grads[key])[index])))
    for key, value in inputs.items():
        for index in some_entries(value.shape, rng, count):
            fd = central_difference(
                lambda v, k=key: loss(cell, params, {**inputs, k: v}, initial, upstream), value, index
            )
            checks.append((f"input {key}{index}", fd, float(to_numpy(grads.inputs[key])[index])))
    for key, value in initial.items():
        assert to_numpy(grads.initial[key]).shape == (value.shape if value.shape[0] > 1 else value.shape[1:])
        for index in some_entries(value.shape, rng, count):
            fd = central_difference(
                lambda v, k=key: loss(cell, params, inputs, {**initial, k: v}, upstream), value, index
            )
            checks.append((f"initial {key}{index}", fd, float(as_history(grads.initial[key])[index])))
    return [(what, fd, g) for what, fd, g in checks if not abs(fd - g) <= RTOL * abs(g) + ATOL]


@pytest.mark.parametrize("name", sorted(CELLS))
def test_gradients_match_central_differences(name):
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell)
    bad = mismatches(cell, params, inputs, initial, upstream)
    assert not bad, f"{name}: bptt disagrees with central differences at (entry, fd, bptt) {bad}"


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("name", ["lstm", "skip3", "bidirectional", "stack_bidirectional"])
def test_sequences_shorter_than_the_delays(name, steps):
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell, steps=steps, batch=1)
    assert not mismatches(cell, params, inputs, initial, upstream, count=4)


def test_upstream_may_name_only_some_nodes():
    cell = concrete("gru")
    params, inputs, initial, upstream = make_problem(cell)
    only_gate = {"z": upstream["z"]}
    grads = gf.bptt(cell, params, inputs, only_gate, initial=initial)
    fd = central_difference(
        lambda v: loss(cell, {**params, "W_z": v}, inputs, initial, only_gate), params["W_z"], (2, 0)
    )
    assert abs(fd - float(grads["W_z"][2, 0])) <= RTOL * abs(fd) + ATOL
    nothing = gf.bptt(cell, params, inputs, {}, initial=initial)
    assert all(np.all(to_numpy(nothing[k]) == 0) for k in nothing) and nothing.norm == 0.0


# -- truncation -----------------------------------------------------------------------------------


def windowed_truncated_gradient(cell, params, inputs, initial, upstream, tau):
    r"""The truncated gradient by brute force: one window per loss step, full BPTT inside it.

    ``Truncated(tau)`` keeps, for the loss at step :math:`i`, the paths of at most :math:`\tau`
    steps back from :math:`i`. For a cell whose paths all run one way in time this is exactly

    .. math:: \sum_i \nabla \langle g^{(i)}, s^{(i)} \rangle \Big|_{\text{window } [i-\tau,\, i]}

    where the window re-simulates steps :math:`\max(1, i-\tau)..i` from the *true* states before
    it (taken from the full trajectory and held constant): every parameter use, input and state
    the loss reaches in at most :math:`\tau` steps lies inside the window, nothing else does. A
    state running backwards gets the mirrored window :math:`[i, i+\tau]`, so the window is
    :math:`[\max(1, i-\tau), \min(T, i+\tau)]` with the backward states entering from its right
    end. An initial value outside the sequence counts only when it is within :math:`\tau` steps
    of :math:`i`. Only full BPTT (checked against finite differences above) is called.

    Not valid for a stack over a bidirectional layer, whose paths change direction in time (a path
    may go back in the upper layer, then forward in the lower one): its steps are not a window.
    """
    steps = next(iter(inputs.values())).shape[0]
    trajectory = gf.simulate(cell, params, inputs, initial)
    grads = {k: np.zeros(np.shape(v)) for k, v in params.items()}
    input_grads = {k: np.zeros_like(v) for k, v in inputs.items()}
    initial_grads = {k: np.zeros_like(v) for k, v in initial.items()}
    for i in range(1, steps + 1):
        start, stop = max(1, i - tau), (min(steps, i + tau) if cell.backward else i)
        history = {}
        for s, value in initial.items():
            d = value.shape[0]
            if s in cell.backward:
                assert d == 1, "the referee handles backward states read one step ahead"
                history[s] = to_numpy(trajectory[s])[stop : stop + 1]  # the value at time stop + 1
            else:
                # the history before the sequence, then the trajectory: index j + d - 1 is time j
                extended = np.concatenate([value[:-1], to_numpy(trajectory[s])], axis=0)
                history[s] = extended[start - 1 : start - 1 + d]
        window_upstream = {}
        for key, g in upstream.items():
            only_i = np.zeros((stop - start + 1, *g.shape[1:]))
            only_i[i - start] = g[i - 1]
            window_upstream[key] = only_i
        window = {k: v[start - 1 : stop] for k, v in inputs.items()}
        result = gf.bptt(cell, params, window, window_upstream, initial=history)
        for key in grads:
            grads[key] += to_numpy(result[key])
        for key in input_grads:
            input_grads[key][start - 1 : stop] += to_numpy(result.inputs[key])
        for s, value in initial.items():
            d, got = value.shape[0], as_history(result.initial[s])
            for k in range(d):  # entry k (oldest first) is at time T + 1 (backward) or k - (d - 1)
                if s in cell.backward:
                    reached = stop == steps and steps + 1 - i <= tau
                else:
                    reached = start == 1 and i - (k - (d - 1)) <= tau
                if reached:
                    initial_grads[s][k] += got[k]
    return grads, input_grads, initial_grads


def assert_same_gradients(got, params, inputs, initial, expected, what, tol=1e-12):
    grads, input_grads, initial_grads = expected
    for key in params:
        np.testing.assert_allclose(
            to_numpy(got[key]), grads[key], rtol=1e-10, atol=tol, err_msg=f"{what}: {key}"
        )
    for key in inputs:
        np.testing.assert_allclose(
            to_numpy(got.inputs[key]), input_grads[key], rtol=1e-10, atol=tol, err_msg=f"{what}: input {key}"
        )
    for key in initial:
        np.testing.assert_allclose(
            as_history(got.initial[key]),
            initial_grads[key],
            rtol=1e-10,
            atol=tol,
            err_msg=f"{what}: initial {key}",
        )


ONE_WAY = [
    "elman",
    "jordan",
    "lstm",
    "gru",
    "skip2",
    "skip3",
    "minimal",
    "stack",
    "bidirectional",
    "gated",
    "stack_skip_lstm",
]


@pytest.mark.parametrize("name", ONE_WAY)
def test_truncation_matches_the_window_referee(name):
    """Truncated(tau) == the sum over loss steps i of full BPTT on the window [i - tau, i] (see
    :func:`windowed_truncated_gradient`), for parameters, inputs and initial states."""
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell, steps=6)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    for tau in (1, 2, 3, 5, 6, 9):
        got = gf.bptt(cell, params, inputs, upstream, truncation=gf.Truncated(tau), initial=initial)
        expected = windowed_truncated_gradient(cell, params, inputs, initial, upstream, tau)
        assert_same_gradients(got, params, inputs, initial, expected, f"{name} tau={tau}")
        if tau < 5:  # the referee is not trivially the full gradient
            assert not np.allclose(to_numpy(got.inputs["x"]), to_numpy(full.inputs["x"]))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_truncation_at_T_is_full(name):
    """tau >= T keeps every path from every loss step: the full gradient, initial state included.

    A skip cell's older history (time 1 - d .. -1) lies more than T steps before step T, so those
    entries are complete only from tau = T + d - 1 on; the most recent one (time 0) from tau = T.
    """
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    longest = max(depth(cell, s) for s in cell.states) - 1  # the oldest history entry, in steps before 0
    for tau in (T, T + longest):
        cut = gf.bptt(cell, params, inputs, upstream, truncation=tau, initial=initial)  # an int is Truncated
        for key in params:
            np.testing.assert_allclose(cut[key], full[key], rtol=1e-10, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(cut.inputs["x"], full.inputs["x"], rtol=1e-10, atol=1e-12)
        for key in initial:
            got, expected = as_history(cut.initial[key]), as_history(full.initial[key])
            complete = slice(None) if tau == T + longest else slice(-1, None)
            np.testing.assert_allclose(got[complete], expected[complete], rtol=1e-10, atol=1e-12, err_msg=key)
            if tau == T and depth(cell, key) > 1:
                assert not np.allclose(got[:-1], expected[:-1])


def test_truncation_at_T_minus_1_keeps_the_parameters_but_not_the_initial_state():
    cell = concrete("elman")
    params, inputs, initial, upstream = make_problem(cell)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    cut = gf.bptt(cell, params, inputs, upstream, truncation=T - 1, initial=initial)
    for key in params:
        np.testing.assert_allclose(cut[key], full[key], rtol=1e-12, atol=1e-14)
    assert not np.allclose(cut.initial["h"], full.initial["h"])  # s(0) is T step Jacobians from s(T)


@pytest.mark.parametrize("name", ["stack_bidirectional", "bidirectional"])
def test_truncation_of_a_cell_running_both_ways_counts_steps_per_direction(name):
    """A path of a stack over a bidirectional layer may run T - 1 steps back in the upper layer and
    T - 1 forward in the lower one; the count is per direction group, so tau = T - 1 is already full
    for the parameters (as for a one-way cell) and tau = T - 2 is not."""
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    cut = gf.bptt(cell, params, inputs, upstream, truncation=T - 1, initial=initial)
    for key in params:
        np.testing.assert_allclose(cut[key], full[key], rtol=1e-10, atol=1e-12, err_msg=key)
    shorter = gf.bptt(cell, params, inputs, upstream, truncation=T - 2, initial=initial)
    assert any(not np.allclose(shorter[key], full[key]) for key in params)


# -- randomized truncation ------------------------------------------------------------------------


def sample_gradients(cell, params, inputs, initial, upstream, pi, seeds):
    samples: dict[str, list[np.ndarray]] = {}
    for seed in seeds:
        result = gf.bptt(cell, params, inputs, upstream, truncation=gf.Randomized(pi, seed), initial=initial)
        for key in params:
            samples.setdefault(key, []).append(to_numpy(result[key]))
        for key in inputs:
            samples.setdefault(f"input {key}", []).append(to_numpy(result.inputs[key]))
        for key in initial:
            samples.setdefault(f"initial {key}", []).append(as_history(result.initial[key]))
    return {key: np.stack(value) for key, value in samples.items()}


def flatten(result, params, inputs, initial):
    out = {key: to_numpy(result[key]) for key in params}
    out.update({f"input {key}": to_numpy(result.inputs[key]) for key in inputs})
    out.update({f"initial {key}": as_history(result.initial[key]) for key in initial})
    return out


@pytest.mark.parametrize("name", ["elman", "gru", "skip2", "bidirectional"])
def test_randomized_truncation_is_unbiased(name):
    """The sample mean over 400 seeds lies within 5 standard errors of the full gradient, entrywise.

    Entries that do not depend on the draws (the last step's inputs of a forward cell) have a
    standard error of rounding size and must match to 1e-12.
    """
    cell = concrete(name, n=2, m=1)
    params, inputs, initial, upstream = make_problem(cell, steps=5)
    full = flatten(gf.bptt(cell, params, inputs, upstream, initial=initial), params, inputs, initial)
    samples = sample_gradients(cell, params, inputs, initial, upstream, 0.6, range(400))
    for key, values in samples.items():
        mean = values.mean(axis=0)
        standard_error = values.std(axis=0, ddof=1) / np.sqrt(len(values))
        excess = np.abs(mean - full[key]) - (5 * standard_error + 1e-12)
        assert np.all(excess <= 0), f"{name} {key}: mean {mean} vs full {full[key]} (se {standard_error})"
    spread = samples["input x"].std(axis=0)
    assert np.all(spread[0] > 1e-3)  # the first step's input is reached through every draw
    if not cell.backward:
        assert np.all(spread[-1] < 1e-12)  # the last step's input: no step Jacobian, no draw


def test_randomized_with_pi_one_is_full_and_seeds_are_reproducible():
    cell = concrete("lstm")
    params, inputs, initial, upstream = make_problem(cell)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    one = gf.bptt(cell, params, inputs, upstream, truncation=gf.Randomized(1, 3), initial=initial)
    for key in params:
        np.testing.assert_array_equal(one[key], full[key])
    np.testing.assert_array_equal(one.inputs["x"], full.inputs["x"])
    first = gf.bptt(cell, params, inputs, upstream, truncation=gf.Randomized(0.5, 11), initial=initial)
    again = gf.bptt(cell, params, inputs, upstream, truncation=gf.Randomized(0.5, 11), initial=initial)
    other = gf.bptt(cell, params, inputs, upstream, truncation=gf.Randomized(0.5, 12), initial=initial)
    np.testing.assert_array_equal(first["W_f"], again["W_f"])
    assert not np.array_equal(first["W_f"], other["W_f"])


def test_randomized_draws_are_independent_per_sequence():
    # two identical sequences in one batch: full BPTT treats them alike, the draws need not
    cell = concrete("elman")
    params, inputs, initial, upstream = make_problem(cell, steps=6, batch=1)
    twice = lambda a: np.concatenate([a, a], axis=-2)  # noqa: E731
    inputs2, upstream2 = {k: twice(v) for k, v in inputs.items()}, {k: twice(v) for k, v in upstream.items()}
    initial2 = {k: twice(v) for k, v in initial.items()}
    full = gf.bptt(cell, params, inputs2, upstream2, initial=initial2)
    np.testing.assert_array_equal(full.inputs["x"][:, 0], full.inputs["x"][:, 1])
    differ = [
        not np.allclose(g.inputs["x"][:, 0], g.inputs["x"][:, 1])
        for g in (
            gf.bptt(cell, params, inputs2, upstream2, truncation=gf.Randomized(0.5, s), initial=initial2)
            for s in range(5)
        )
    ]
    assert any(differ)


def exact_expectation(cell, params, inputs, initial, upstream, pi):
    """The exact mean over the draws: the gradient of every keep pattern, weighted by its probability."""
    steps = next(iter(inputs.values())).shape[0]
    expectation = {key: np.zeros(np.shape(v)) for key, v in params.items()}
    groups = len({sweep.direction for sweep in gf.numeric.compile(cell).sweeps})
    for pattern, seed in seed_for_each_pattern(steps, pi, groups).items():
        weight = np.prod([pi if keep else 1 - pi for keep in pattern])
        result = gf.bptt(cell, params, inputs, upstream, truncation=gf.Randomized(pi, seed), initial=initial)
        for key in expectation:
            expectation[key] += weight * to_numpy(result[key])
    return expectation


@pytest.mark.parametrize("name", ["lstm", "skip2", "stack", "bidirectional"])
def test_exact_expectation_of_randomized_truncation(name):
    cell = concrete(name, n=2, m=1)
    params, inputs, initial, upstream = make_problem(cell, steps=4, batch=1)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    expectation = exact_expectation(cell, params, inputs, initial, upstream, 0.5)
    for key in params:
        np.testing.assert_allclose(expectation[key], full[key], rtol=1e-12, atol=1e-13, err_msg=key)


def test_exact_expectation_of_randomized_truncation_on_a_stack_over_a_bidirectional_layer():
    cell = concrete("stack_bidirectional", n=2, m=1)
    params, inputs, initial, upstream = make_problem(cell, steps=3, batch=1)
    full = gf.bptt(cell, params, inputs, upstream, initial=initial)
    expectation = exact_expectation(cell, params, inputs, initial, upstream, 0.5)
    for key in params:
        np.testing.assert_allclose(expectation[key], full[key], rtol=1e-12, atol=1e-13, err_msg=key)


# -- clipping -------------------------------------------------------------------------------------


def test_clip_norm_rescales_to_the_threshold_when_exceeded():
    cell = concrete("gru")
    params, inputs, initial, upstream = make_problem(cell)
    plain = gf.bptt(cell, params, inputs, upstream, initial=initial)
    norm = np.sqrt(sum(np.sum(to_numpy(plain[k]) ** 2) for k in plain))
    assert plain.norm == pytest.approx(norm, rel=1e-14) and not plain.clipped
    threshold = norm / 7
    clipped = gf.bptt(cell, params, inputs, upstream, initial=initial, clip_norm=threshold)
    assert clipped.clipped and clipped.norm == pytest.approx(norm, rel=1e-14)  # .norm: before clipping
    assert global_norm(clipped) == pytest.approx(threshold, rel=1e-12)
    for key in params:  # same direction, scaled by threshold / norm
        np.testing.assert_allclose(
            clipped[key], to_numpy(plain[key]) * (threshold / norm), rtol=1e-12, atol=1e-15
        )
    np.testing.assert_array_equal(clipped.inputs["x"], plain.inputs["x"])  # only parameters are clipped
    loose = gf.bptt(cell, params, inputs, upstream, initial=initial, clip_norm=norm * 1.01)
    assert not loose.clipped
    for key in params:
        np.testing.assert_array_equal(loose[key], plain[key])


def test_clip_value_clamps_every_component():
    cell = concrete("lstm")
    params, inputs, initial, upstream = make_problem(cell)
    plain = gf.bptt(cell, params, inputs, upstream, initial=initial)
    limit = 0.5 * max(float(np.max(np.abs(to_numpy(plain[k])))) for k in plain)
    clamped = gf.bptt(cell, params, inputs, upstream, initial=initial, clip_value=limit)
    assert clamped.clipped and clamped.norm == plain.norm
    for key in params:
        np.testing.assert_array_equal(clamped[key], np.clip(to_numpy(plain[key]), -limit, limit))
    both = gf.bptt(
        cell, params, inputs, upstream, initial=initial, clip_norm=plain.norm / 2, clip_value=limit / 4
    )
    for key in params:  # rescaled first, then clamped
        expected = np.clip(to_numpy(plain[key]) / 2, -limit / 4, limit / 4)
        np.testing.assert_allclose(both[key], expected, rtol=1e-12, atol=1e-15)
    untouched = gf.bptt(cell, params, inputs, upstream, initial=initial, clip_value=4 * limit)
    assert not untouched.clipped


def test_clipping_functions():
    grads = {"a": np.array([3.0, -4.0]), "b": np.array([[12.0]])}
    assert global_norm(grads) == 13.0
    scaled, changed = clip_by_norm(grads, 6.5)
    assert changed and global_norm(scaled) == pytest.approx(6.5, rel=1e-15)
    np.testing.assert_allclose(scaled["a"], [1.5, -2.0])
    same, changed = clip_by_norm(grads, 13.0)
    assert not changed and same["a"] is grads["a"]
    clamped, changed = clip_by_value(grads, 3.5)
    assert changed
    np.testing.assert_array_equal(clamped["a"], [3.0, -3.5])
    np.testing.assert_array_equal(clamped["b"], [[3.5]])
    for bad in (0, -1.0, float("inf"), float("nan"), "1"):
        with pytest.raises(gf.GradflowError, match="positive"):
            clip_by_norm(grads, bad)
        with pytest.raises(gf.GradflowError, match="positive"):
            clip_by_value(grads, bad)


# -- backends and dtypes --------------------------------------------------------------------------


def strict(value):
    return array_api_strict.asarray(value)


def assert_backends_agree(cell, params, inputs, initial, upstream, truncation=None, tol=1e-12):
    reference = gf.bptt(cell, params, inputs, upstream, truncation, initial)
    other = gf.bptt(
        cell,
        {k: strict(v) for k, v in params.items()},
        {k: strict(v) for k, v in inputs.items()},
        {k: strict(v) for k, v in upstream.items()},
        truncation,
        {k: strict(v) for k, v in initial.items()},
    )
    pairs = [(k, reference[k], other[k]) for k in params]
    pairs += [(f"input {k}", reference.inputs[k], other.inputs[k]) for k in inputs]
    pairs += [(f"initial {k}", reference.initial[k], other.initial[k]) for k in initial]
    pairs += [(f"trajectory {k}", reference.trajectory[k], other.trajectory[k]) for k in reference.trajectory]
    for what, expected, got in pairs:
        assert type(got).__module__.startswith("array_api_strict"), what
        expected, got = to_numpy(expected), to_numpy(got)
        assert np.all(np.isfinite(got)), what
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=what)
    assert other.norm == pytest.approx(reference.norm, rel=tol)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "bidirectional", "skip2", "gated"])
def test_array_api_strict_gives_the_numpy_numbers(name):
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell)
    assert_backends_agree(cell, params, inputs, initial, upstream)
    assert_backends_agree(cell, params, inputs, initial, upstream, gf.Truncated(2))
    simulated = gf.simulate(cell, params, inputs, initial, backend="array_api_strict")
    for key, value in gf.simulate(cell, params, inputs, initial).items():
        assert type(simulated[key]).__module__.startswith("array_api_strict")
        np.testing.assert_allclose(to_numpy(simulated[key]), value, rtol=1e-12, atol=1e-12)


def test_randomized_truncation_on_array_api_strict():
    cell = concrete("elman")
    params, inputs, initial, upstream = make_problem(cell)
    assert_backends_agree(cell, params, inputs, initial, upstream, gf.Randomized(0.5, 4))


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(["elman", "lstm", "gru", "bidirectional", "indrnn"]),
    steps=st.integers(1, 6),
    batch=st.integers(1, 3),
    scale=st.floats(0.1, 4.0),
    seed=st.integers(0, 2**16),
)
def test_backends_agree_and_stay_finite(name, steps, batch, scale, seed):
    cell = concrete(name)
    params, inputs, initial, upstream = make_problem(cell, seed=seed, steps=steps, batch=batch)
    params = {k: scale * v for k, v in params.items()}
    inputs = {k: 3 * scale * v for k, v in inputs.items()}
    assert_backends_agree(cell, params, inputs, initial, upstream, tol=1e-10)


@pytest.mark.parametrize("backend", [None, "array_api_strict"])
def test_float32_on_request(backend):
    cell = concrete("lstm")
    params, inputs, initial, upstream = make_problem(cell)
    wide = gf.bptt(cell, params, inputs, upstream, initial=initial)
    narrow = gf.bptt(cell, params, inputs, upstream, initial=initial, backend=backend, dtype="float32")
    arrays = [narrow[k] for k in narrow] + list(narrow.inputs.values()) + list(narrow.initial.values())
    arrays += list(narrow.trajectory.values())
    xp = gf.numeric.namespace(backend)
    assert all(a.dtype == xp.float32 for a in arrays)
    for key in params:
        np.testing.assert_allclose(to_numpy(narrow[key]), to_numpy(wide[key]), rtol=1e-4, atol=1e-5)
    traj = gf.simulate(cell, params, inputs, initial, backend=backend, dtype="float32")
    assert all(a.dtype == xp.float32 for a in traj.values())


# -- bad input ------------------------------------------------------------------------------------


@pytest.fixture
def elman_problem():
    cell = concrete("elman")
    params, inputs, initial, upstream = make_problem(cell)
    return cell, params, inputs["x"], {"h": initial["h"][0]}, upstream


def test_wrong_or_missing_parameters(elman_problem):
    cell, params, x, _, upstream = elman_problem
    with pytest.raises(gf.ShapeError, match=r"parameter 'W_h' has shape \(3, 2\).*needs \(3, 3\)"):
        gf.bptt(cell, {**params, "W_h": np.ones((3, 2))}, x, upstream)
    with pytest.raises(gf.ShapeError, match=r"parameter 'b' has size 4 where cell 'elman' needs n = 3"):
        gf.simulate(C.elman(), {**params, "b": np.ones(4)}, x)  # sizes read off the arrays
    with pytest.raises(gf.ShapeError, match="missing b"):
        gf.simulate(cell, {k: v for k, v in params.items() if k != "b"}, x)
    with pytest.raises(gf.ShapeError, match="unknown V"):
        gf.bptt(cell, {**params, "V": np.ones(3)}, x, upstream)
    with pytest.raises(gf.ShapeError, match=r"input 'x' has size 5 but cell 'elman' needs 2"):
        gf.simulate(cell, params, np.ones((T, B, 5)))
    with pytest.raises(gf.ShapeError, match=r"input 'x' must be laid out \(T, B, size\)"):
        gf.simulate(cell, params, np.ones((T, M)))


def test_wrong_upstream(elman_problem):
    cell, params, x, _, _ = elman_problem
    with pytest.raises(
        gf.ShapeError, match=r"upstream gradient of 'h' has shape \(4, 2, 2\); expected .*\(4, 2, 3\)"
    ):
        gf.bptt(cell, params, x, {"h": np.ones((T, B, 2))})
    with pytest.raises(gf.ShapeError, match=r"upstream gradient of 'h' has shape \(5, 2, 3\)"):
        gf.bptt(cell, params, x, {"h": np.ones((T + 1, B, N))})
    with pytest.raises(gf.ShapeError, match="upstream gradient for 'c', which cell 'elman' does not compute"):
        gf.bptt(cell, params, x, {"c": np.ones((T, B, N))})


def test_wrong_initial_state(elman_problem):
    cell, params, x, initial, upstream = elman_problem
    with pytest.raises(
        gf.ShapeError, match=r"initial value of state 'h' has shape \(2, 2\); expected \(2, 3\)"
    ):
        gf.bptt(cell, params, x, upstream, initial={"h": np.ones((B, 2))})
    with pytest.raises(gf.ShapeError, match="initial values for c, which are not states"):
        gf.simulate(cell, params, x, initial={"c": np.ones((B, N))})
    skip = concrete("skip3")
    with pytest.raises(gf.ShapeError, match=r"expected \(2, 3\) or \(3,\) or \(3, 2, 3\)"):
        gf.simulate(skip, init_params(skip, seed=0), x, initial={"h": np.ones((2, B, N))})
    broadcast = gf.simulate(cell, params, x, initial={"h": initial["h"][0]})  # (n,): the same for all
    np.testing.assert_array_equal(broadcast["h"][0, 1], initial["h"][0])


def test_generic_activation_cannot_be_computed(elman_problem):
    _, params, x, _, upstream = elman_problem
    generic = C.elman(activation=C.activations.generic(), n=N, m=M)
    with pytest.raises(gf.NotDifferentiableError, match="'sigma' is an undefined function"):
        gf.simulate(generic, params, x)
    with pytest.raises(gf.NotDifferentiableError, match="undefined function"):
        gf.bptt(C.elman("sigma", n=N, m=M), params, x, upstream)


def test_clipping_on_array_api_strict():
    cell = concrete("gru")
    params, inputs, initial, upstream = make_problem(cell)
    plain = gf.bptt(cell, params, inputs, upstream, initial=initial)
    other = gf.bptt(
        cell,
        {k: strict(v) for k, v in params.items()},
        {k: strict(v) for k, v in inputs.items()},
        upstream,
        initial=initial,
        clip_norm=plain.norm / 3,
        clip_value=0.05,
    )
    assert other.clipped and other.norm == pytest.approx(plain.norm, rel=1e-12)
    for key in params:
        expected = np.clip(to_numpy(plain[key]) / 3, -0.05, 0.05)
        np.testing.assert_allclose(to_numpy(other[key]), expected, rtol=1e-12, atol=1e-15)
