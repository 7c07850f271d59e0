r"""Spectral norms of every lag of a Jacobian chain, for :mod:`gradflow.numeric.chain`.

The top left singular block :math:`U` (:math:`N \times p`, orthonormal) of the
chain's :math:`D_k` changes little from one lag to the next (it settles as the
lag grows: Oseledets' backward vectors), so one block serves many lags. The
chain carries :math:`Z_k = U^\top D_k` as :math:`p` extra rows of its mantissa:
:math:`Z_k = \sum_d Z_{k-d} J^{[d]}` is updated by the same product as
:math:`D_k` (:math:`p/N` more work), and one Rayleigh--Ritz step of subspace
iteration on :math:`D_k D_k^\top` then costs one pass over :math:`D_k`:
:math:`V = D_k Z_k^\top = D_k D_k^\top U` and :math:`H = Z_k Z_k^\top = U^\top
D_k D_k^\top U`. The lags of a window whose test fails are iterated together by
block Krylov steps (a basis of :math:`\{X, A X, A^2 X, \ldots\}` for
:math:`A = D_k D_k^\top`, two passes over :math:`D_k` a block, Rayleigh--Ritz on
the whole basis after each), and the block the last of them ends with, one step
on, becomes :math:`U` for the lags after them.

The test is rigorous. Let :math:`\lambda_1 \ge \dots \ge \lambda_N \ge 0` be the
eigenvalues of :math:`A = D D^\top` (they sum to :math:`\lVert D\rVert_F^2`),
:math:`\theta_1 \ge \dots \ge \theta_m` the Ritz values from an orthonormal basis
of :math:`m` columns, :math:`u` the top Ritz vector and :math:`r = \lVert A u -
\theta_1 u\rVert`. Then :math:`\lambda_i \ge \theta_i` (Cauchy interlacing), and

* :math:`\alpha = \lVert D\rVert_F^2 - \theta_1 - \sum_{i=3}^{m} \theta_i` bounds
  the top eigenvalue of :math:`C`, :math:`A` compressed to :math:`u^\perp`: its
  trace is :math:`\lVert D\rVert_F^2 - \theta_1`, it is positive semidefinite,
  and its eigenvalues after the largest are at least :math:`\theta_3, \ldots,
  \theta_m` (interlacing again: compressed further to the other Ritz vectors,
  which lie in :math:`u^\perp`, it has the eigenvalues :math:`\theta_2, \ldots,
  \theta_m`);
* in the basis :math:`(u, u^\perp)`, :math:`A = \begin{pmatrix} \theta_1 & s^\top
  \\ s & C \end{pmatrix}` with :math:`\lVert s\rVert = r`, so for a unit vector
  :math:`x = (\xi, y)`, :math:`x^\top A x \le \theta_1 \xi^2 + 2 r |\xi| \lVert
  y\rVert + \alpha \lVert y\rVert^2`, and :math:`\lambda_1` is at most the larger
  eigenvalue of :math:`\begin{pmatrix} \theta_1 & r \\ r & \alpha\end{pmatrix}`:

.. math::
    \lambda_1 - \theta_1 \le \frac{2 r^2}{g + \sqrt{g^2 + 4 r^2}}
    = \frac{\sqrt{g^2 + 4 r^2} - g}{2}, \qquad g = \theta_1 - \alpha.

For :math:`g > 0` this is below both :math:`r^2/g` (Kato--Temple, with
:math:`\alpha \ge \lambda_2`) and :math:`r` (Krylov--Weinstein); for :math:`r = 0`
it is :math:`\max(0, -g)` (the trace argument: no eigenvalue outside the basis can
exceed what the basis leaves of :math:`\lVert D\rVert_F^2`). A lag is done when
the bound is within ``tol`` :math:`\theta_1` (``tol`` is held at 16 ulp of the
dtype or above: in float32, 2e-6), and :math:`\lVert D\rVert_2 = \sqrt{\theta_1}`
is then at most ``tol``/2 below the true norm, and never above it (up to rounding).

Krylov--Weinstein alone (:math:`\lambda_1 \le \theta_1 + r`) is not enough: it
places *some* eigenvalue within :math:`r` of :math:`\theta_1`, not the top one.
A block of exact eigenvectors that misses the top one -- coordinate vectors of a
diagonal chain, such as the LSTM's cell state, once another unit takes the lead
-- has :math:`r \approx 0` and the wrong :math:`\theta_1`; its :math:`\alpha`,
which holds the missed eigenvalue, is then above :math:`\theta_1`, and the bound
says so.

Long chains are nearly of low rank, so :math:`\alpha` is close to :math:`\lambda_2`
and the bound ends most lags after one step. Where it does not:

* the entries of :math:`D` give a second pair of bounds (:func:`_entrywise`):
  :math:`\lambda_1` is at least the largest squared norm of a row or a column and at
  most :math:`\lVert D\rVert_1 \lVert D\rVert_\infty`; both are :math:`\max_i
  D_{ii}^2` for a diagonal :math:`D`, so a diagonal chain needs no more than the
  window's step even where its spectrum is flat (many units of similar gain), where
  the trace argument is weakest;
* block Krylov steps follow; where a new block lies inside the basis (the space is
  invariant, as the coordinate vectors of a diagonal chain make it), a fixed
  pseudo-random block takes its place, so that the basis stays orthonormal and
  grows out of an invariant subspace that misses the top eigenvector;
* where a whole Krylov cycle leaves :math:`\alpha \ge \theta_1`, or the carried
  block's Ritz values say it would (a flat spectrum: the first lags of a dense
  chain), no basis of that size holds enough of :math:`\lVert D\rVert_F^2` to
  separate the top eigenvalue, and the lags take the largest Gram eigenvalue
  (exact, :math:`O(N^3)`).

:math:`D_0 = I` takes no test (its norm is 1): a block of :math:`p < N` columns
cannot tell it from a matrix with a larger eigenvalue outside the block.

References
----------
B. N. Parlett, *The Symmetric Eigenvalue Problem*, SIAM, 1998 (Cauchy interlacing,
Rayleigh--Ritz, the Krylov--Weinstein and Kato--Temple bounds).

C.-K. Li and R.-C. Li, "A note on eigenvalues of perturbed Hermitian matrices",
Linear Algebra Appl. 395, 2005 (the bound above, for a 2 x 2 block partition).

G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., Johns Hopkins, 2013
(:math:`\lVert D\rVert_2^2 \le \lVert D\rVert_1 \lVert D\rVert_\infty`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = ["WINDOW", "SpectralNorms"]


#: Lags tested together: their Rayleigh--Ritz steps are batched (one eigh call for all of them). The first
#: windows hold 1, 2, 4 lags: the first lags are the ones that fail and update the block most often.
WINDOW = 8

#: Blocks of the Krylov space one cycle of the iteration builds (see ``SpectralNorms._iterate``).
DEPTH = 6

#: Rounding slack added to alpha, in units of the dtype's epsilon times the squared Frobenius norm
#: alpha is computed from (a sum of N^2 squares and p Ritz values).
_SLACK_ULPS = 1024

#: The smallest ``tol``, in units of the dtype's epsilon: a residual cannot be resolved below a few
#: ulp of theta, and asking for less would only run every lag into the Gram fallback (in float32).
_TOL_ULPS = 16


def _t(xp: Any, a: Any) -> Any:
    return xp.matrix_transpose(a)


def _bound(xp: Any, U: Any, Z: Any, V: Any, F2: Any, eps: float) -> tuple[Any, Any, Any, Any]:
    r"""Rayleigh--Ritz on the orthonormal basis ``U`` (..., N, p) of :math:`A = D D^\top`: ``(theta, Y, excess, g)``.

    The leading axes broadcast: a window's lags (count, B, ...) share one block (B, N, p).

    ``Z`` (..., p, N) is :math:`U^\top D`, ``V`` (..., N, p) is :math:`D Z^\top`, ``F2`` the
    squared Frobenius norm of :math:`D`; ``theta`` (..., p) are the Ritz values, the eigenvalues of
    :math:`U^\top A U`, ascending, and ``Y`` (..., p, p) their eigenvectors (the Ritz vectors are
    ``U Y``). ``excess`` bounds :math:`\lambda_1 - \theta_1` from above (the bound of the module
    docstring, with ``_SLACK_ULPS`` of rounding added to :math:`\alpha`); ``g`` is :math:`(\theta_1 - \alpha) / \lVert D\rVert_F^2`, positive when the
    basis holds enough of :math:`\lVert D\rVert_F^2` to separate :math:`\lambda_1` from the rest.
    """
    H = xp.matmul(Z, _t(xp, Z))
    theta, Y = xp.linalg.eigh((H + _t(xp, H)) / 2)
    top, y = theta[..., -1], Y[..., -1:]
    # everything in units of ||D||_F^2, where the squares neither overflow nor underflow (float32)
    positive = F2 > 0
    unit = xp.where(positive, F2, xp.ones_like(F2))
    residual = (xp.matmul(V, y)[..., 0] - top[..., None] * xp.matmul(U, y)[..., 0]) / unit[..., None]
    r = xp.sqrt(xp.sum(residual * residual, axis=-1))
    alpha = (F2 - top - xp.sum(theta[..., :-2], axis=-1)) / unit + _SLACK_ULPS * eps
    g = top / unit - alpha
    root = xp.sqrt(g * g + 4 * r * r)
    separated = g > 0
    # the larger eigenvalue of [[theta_1, r], [r, alpha]] minus theta_1, in the form without cancellation
    excess = xp.where(separated, 2 * r * (r / xp.where(separated, g + root, xp.ones_like(g))), (root - g) / 2)
    # D = 0 (a chain through a zero Jacobian): theta_1 = 0 is exact
    return theta, Y, xp.where(positive, excess * unit, xp.zeros_like(excess)), g


class _Tested(NamedTuple):
    """What :func:`_test` finds for each lag."""

    lower: Any  #: a lower bound on lambda_1: theta_1, or the floor of _entrywise where larger
    done: Any  #: the upper bound on lambda_1 is within tol * lower of lower
    separated: Any  #: alpha < theta_1: the basis separates lambda_1 from the rest
    theta: Any  #: the Ritz values (..., p), ascending
    vectors: Any  #: their eigenvectors Y (..., p, p): the Ritz vectors are U Y


def _test(xp: Any, U: Any, Z: Any, V: Any, F2: Any, tol: float, eps: float, entrywise: Any = None) -> _Tested:
    r""":func:`_bound`, tested: done when the upper bound on :math:`\lambda_1` is within ``tol lower``.

    ``lower`` is the Ritz value :math:`\theta_1`; ``entrywise``, optional: ``(floor, schur)`` of
    :func:`_entrywise`, a second lower and upper bound; the better of each counts.
    """
    theta, Y, excess, g = _bound(xp, U, Z, V, F2, eps)
    lower = theta[..., -1]
    if entrywise is not None:
        floor, schur = entrywise
        upper = xp.minimum(lower + excess, schur)
        lower = xp.maximum(lower, floor)
        excess = upper - lower
    return _Tested(lower, excess <= tol * lower, g > 0, theta, Y)


def _entrywise(xp: Any, D: Any, lower: Any, eps: float) -> tuple[Any, Any]:
    r"""Bounds on :math:`\lambda_1(D D^\top) = \lVert D\rVert_2^2` from the entries of each ``D`` (..., N, N).

    ``(floor, schur)``: ``floor``, the largest squared norm of a row or a column of :math:`D`, is at
    most :math:`\lVert D\rVert_2^2` (the Rayleigh quotient of a coordinate vector); ``schur`` is at
    least :math:`\lVert D\rVert_2^2 \le \lVert D\rVert_1 \lVert D\rVert_\infty`, the largest column
    sum of :math:`|D|` times the largest row sum (Golub & Van Loan, *Matrix Computations*, ch. 2),
    raised by the rounding of the sums (:math:`2 N + 2` ulp). Both are :math:`\max_i D_{ii}^2` for a
    diagonal :math:`D` -- where the trace argument of :func:`_bound` is weakest, with many units of
    similar gain -- and a few passes over :math:`D`, no product, find it.

    ``lower`` (...) is a lower bound on :math:`\lambda_1` (the Ritz value). Where every ``floor`` is
    below half of it, as for a dense :math:`D` (a low-rank :math:`\sigma u v^\top` has ``floor``
    :math:`\sigma^2 \max_j v_j^2`, near :math:`\sigma^2 \cdot 2 \log N / N`), :math:`D` is far from
    diagonal and ``schur`` far above :math:`\lambda_1`: it is not computed but set to infinity.
    """
    floor = xp.maximum(xp.max(xp.vecdot(D, D, axis=-2), axis=-1), xp.max(xp.vecdot(D, D, axis=-1), axis=-1))
    if not bool(xp.any(2 * floor >= lower)):
        return floor, xp.full_like(floor, math.inf)
    magnitude = xp.abs(D)
    columns = xp.max(xp.sum(magnitude, axis=-2), axis=-1)
    rows = xp.max(xp.sum(magnitude, axis=-1), axis=-1)
    return floor, columns * rows * (1 + (2 * D.shape[-1] + 2) * eps)


class SpectralNorms:
    """Spectral norms of a chain's lags, tested a window at a time (see the module docstring).

    ``U`` (B, N, p) is the block the chain's ``Z`` rows are taken against. :meth:`add` takes a lag's
    mantissa ``D`` (B, N, N), ``Z = U^T D`` (B, p, N) and the squared Frobenius norm of ``D``
    (B,) (the chain computed it already); :meth:`flush` tests the lags held, iterates
    the ones that fail, and returns each lag's largest singular value of ``D`` (B,) and iteration
    count. When a lag was iterated, :attr:`U` has changed and the chain must retake its ``Z`` rows
    (:attr:`restarted`).
    """

    def __init__(self, xp: Any, U: Any, tol: float, max_iter: int) -> None:
        self.eps = float(xp.finfo(U.dtype).eps)
        self.xp, self.U, self.tol, self.max_iter = xp, U, max(tol, _TOL_ULPS * self.eps), max_iter
        self.held: list[tuple[Any, Any, Any, Any]] = []  # (D, Z, V, F2) of each lag waiting
        self.restarted = False
        N, p = U.shape[-2], U.shape[-1]
        # fixed pseudo-random blocks (N, p), one for each Krylov block after the first, columns of unit
        # norm on average; the same numbers on every backend, so that the iteration counts agree
        draws = np.random.default_rng(0).standard_normal((DEPTH, N, p)) / math.sqrt(N)
        self.random = xp.asarray(draws.tolist(), dtype=U.dtype)

    def add(self, D: Any, Z: Any, F2: Any) -> None:
        """Hold a lag: its mantissa ``D``, ``Z = U^T D`` and ``F2`` the squared Frobenius norm of ``D``."""
        self.held.append((D, Z, self.xp.matmul(D, _t(self.xp, Z)), F2))

    def retake(self, M: Any, N: int) -> Any:
        """``M`` (B, N + p, N) with its last ``p`` rows ``U^T D`` retaken for the current block ``U``."""
        xp = self.xp
        D = M[:, :N, :]
        return xp.concat([D, _t(xp, xp.matmul(_t(xp, D), self.U))], axis=1)

    def __len__(self) -> int:
        return len(self.held)

    def flush(self) -> tuple[Any, list[int]]:
        """Test the lags held; iterate those that fail. ``(sigma (count, B), iterations of each lag)``.

        A lag that fails the test of :func:`_bound` is tested again with the bounds of
        :func:`_entrywise` (a few passes over :math:`D`, no product) before any Krylov step: they
        end the lags of a diagonal chain.
        """
        xp, held = self.xp, self.held
        count = len(held)
        stack = lambda i: xp.stack([entry[i] for entry in held], axis=0)  # noqa: E731
        # one batched test for the whole window: the block U (B, N, p) broadcasts over its lags
        tested = _test(xp, self.U, stack(1), stack(2), stack(3), self.tol, self.eps)
        top, done = tested.lower, tested.done
        sigma = xp.sqrt(xp.clip(top, 0.0, None))
        iterations = [1] * count
        failing = [] if bool(xp.all(done)) else [k for k in range(count) if not bool(xp.all(done[k, ...]))]
        self.restarted = False
        if failing:
            pick = lambda i: xp.concat([held[k][i] for k in failing], axis=0)  # noqa: E731
            D, tops = pick(0), xp.concat([top[k, ...] for k in failing], axis=0)
            entrywise = _entrywise(xp, D, tops, self.eps)
            floor, schur = entrywise
            lower = xp.maximum(tops, floor)
            if bool(xp.all(schur - lower <= self.tol * lower)):
                found, used = xp.sqrt(lower), 1
            elif self._hopeless(
                xp.concat([tested.theta[k, ...] for k in failing], axis=0), pick(3), D.shape[-1]
            ):
                # Gram eigenvalues at once; the block takes one step of subspace iteration on the last lag
                found, used = _gram(xp, D), 0
                self.U = xp.linalg.qr(held[failing[-1]][2])[0]
                self.restarted = True
            else:
                found, used = self._iterate(D, pick(2), pick(3), entrywise)
                self.restarted = True
            B = self.U.shape[0]
            rows = [sigma[k, ...] for k in range(count)]
            for j, k in enumerate(failing):
                rows[k], iterations[k] = found[j * B : (j + 1) * B, ...], used
            sigma = xp.stack(rows, axis=0)
        self.held = []
        return sigma, iterations

    def _iterate(self, D: Any, V: Any, F2: Any, entrywise: tuple[Any, Any]) -> tuple[Any, int]:
        r"""Block Krylov iteration on the lags (stacked on the batch axis) whose first step failed.

        ``V`` is :math:`A U` for :math:`A = D D^\top`, ``entrywise`` the bounds of :func:`_entrywise`. A cycle
        builds an orthonormal basis :math:`K` of :math:`\operatorname{span}\{X, A X, \ldots, A^{q-1}
        X\}` from the block :math:`X = \operatorname{qr}(A U)` and takes one Rayleigh--Ritz step on it,
        with the test of :func:`_test` after each block. Where a new block lies (almost) inside the
        basis -- the space became invariant, as the coordinate vectors of a diagonal chain make it --
        a fixed pseudo-random block of :math:`\sqrt{\epsilon}` its norm added to it takes its place:
        the basis stays orthonormal, and grows out of an invariant subspace that misses the top
        eigenvector. A cycle that fills ``q`` blocks without passing starts the next from :math:`A`
        times its top ``p`` Ritz vectors -- unless its basis left :math:`\alpha \ge \theta_1` for some
        lag: then the lags fall back to Gram eigenvalues at once (the basis holds too little of
        :math:`\lVert D\rVert_F^2` to separate the top eigenvalue, and another cycle of the same size
        rarely holds more). A block costs one product of :math:`A` with a block, as a step of subspace
        iteration would, but ``q`` of those reach only :math:`A^q X`, while the Krylov space holds
        every polynomial of degree below ``q`` in :math:`A`: near flat spectra the best of them
        (Chebyshev's) converges far faster (Saad, *Numerical Methods for Large Eigenvalue Problems*,
        ch. 6; Musco & Musco, NeurIPS 2015). Returns the top singular values and the count of block
        products with :math:`A` (1 for the window's test, then one a block; 0 after the Gram
        fallback). The lags after them start from the block of the last of them, one step on:
        ``qr(A X)``.
        """
        xp, B, p = self.xp, self.U.shape[0], self.U.shape[-1]
        depth = max(1, min(DEPTH, D.shape[-2] // p))  # the basis K must fit in the N dimensions
        used, start = 1, V
        while used < self.max_iter:
            blocks: list[Any] = []  # Q_j, an orthonormal basis of the Krylov space block by block
            lefts: list[Any] = []  # D^T Q_j
            images: list[Any] = []  # A Q_j = D D^T Q_j
            block = start
            while len(blocks) < depth and used < self.max_iter:
                Q = _orthonormal(xp, self._mixed(block, len(blocks)) if blocks else block, blocks)
                lefts.append(xp.matmul(_t(xp, D), Q))
                images.append(xp.matmul(D, lefts[-1]))
                blocks.append(Q)
                used += 1
                # Rayleigh--Ritz on the basis so far: small next to the two passes over D
                K, AK = xp.concat(blocks, axis=-1), xp.concat(images, axis=-1)
                left = _t(xp, xp.concat(lefts, axis=-1))  # K^T D
                tested = _test(xp, K, left, AK, F2, self.tol, self.eps, entrywise)
                top, done, separated = tested.lower, tested.done, tested.separated
                start = xp.matmul(AK, tested.vectors[..., -p:])  # A X for X = K Y: the top p Ritz vectors
                if bool(xp.all(done)):
                    self.U = xp.linalg.qr(start[-B:, ...])[0]
                    return xp.sqrt(xp.clip(top, 0.0, None)), used
                block = images[-1]
            if not bool(xp.all(xp.logical_or(done, separated))):
                break  # no certified gap: Gram eigenvalues
        self.U = xp.linalg.qr(start[-B:, ...])[0]
        return _gram(xp, D), 0

    def _hopeless(self, theta: Any, F2: Any, N: int) -> bool:
        """Whether a Krylov cycle would end with alpha >= theta_1 for some lag (a guess, no bound).

        By the Ritz values ``theta`` (..., p) of the carried block: even if the cycle's basis (``m``
        columns) held the top ``p`` of them and ``m - p`` more as large as the ``p``-th, the rest of
        ``F2`` would be too much. It only spares the cycle (several block products) before the Gram
        fallback; a wrong guess costs time, never accuracy. Flat spectra (the first lags of a dense
        chain) are hopeless, unless the basis can span the whole space.
        """
        xp, p = self.xp, theta.shape[-1]
        m = max(1, min(DEPTH, N // p)) * p
        if m == N:  # the basis spans the space: its Ritz values are the eigenvalues
            return False
        held = xp.sum(theta, axis=-1) - theta[..., -2] + (m - p) * theta[..., 0] if p > 1 else theta[..., -1]
        return bool(xp.any(F2 - held >= theta[..., -1]))

    def _mixed(self, block: Any, level: int) -> Any:
        """``block`` (..., N, p) plus sqrt(eps) of its norm times the random block of Krylov block ``level``.

        The norm is taken per column, on average; a zero block gets the random block itself.
        """
        xp = self.xp
        norm = xp.sqrt(xp.sum(block * block, axis=(-2, -1)) / block.shape[-1])
        scale = xp.where(norm > 0, math.sqrt(self.eps) * norm, xp.ones_like(norm))
        return block + scale[..., None, None] * self.random[level, ...]


def _gram(xp: Any, D: Any) -> Any:
    """The largest singular value of each ``D`` (..., N, N), by the eigenvalues of its Gram matrix."""
    largest = xp.max(xp.linalg.eigvalsh(xp.matmul(D, _t(xp, D))), axis=-1)
    return xp.sqrt(xp.clip(largest, 0.0, None))


def _orthonormal(xp: Any, block: Any, basis: list[Any]) -> Any:
    """An orthonormal basis of ``block`` (..., N, p) orthogonal to the blocks of ``basis``.

    Block Gram--Schmidt, once before normalising and once after: the Rayleigh--Ritz bounds hold
    only for an orthonormal basis, and a block almost inside the span of the others (a chain of
    low rank) loses its orthogonality in the normalisation; the second pass restores it.
    """
    if not basis:
        return xp.linalg.qr(block)[0]
    K = xp.concat(basis, axis=-1)
    Q = xp.linalg.qr(block - xp.matmul(K, xp.matmul(_t(xp, K), block)))[0]
    return xp.linalg.qr(Q - xp.matmul(K, xp.matmul(_t(xp, K), Q)))[0]
