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

The test is rigorous. With :math:`\theta_1 \ge \dots \ge \theta_p` the Ritz
values, :math:`u` the top Ritz vector and :math:`r = \lVert D D^\top u -
\theta_1 u\rVert`, the top eigenvalue :math:`\lambda_1 \ge \theta_1` of
:math:`D D^\top` satisfies

* :math:`\lambda_1 \le \theta_1 + r` (Krylov--Weinstein), and
* :math:`\lambda_1 \le \theta_1 + r^2 / (\theta_1 - \alpha)` for any
  :math:`\alpha \ge \lambda_2` below :math:`\theta_1` (Kato--Temple; Parlett,
  *The Symmetric Eigenvalue Problem*). Here :math:`\alpha =
  \lVert D\rVert_F^2 - \theta_1 - \sum_{i=3}^{p} \theta_i`, since the eigenvalues
  sum to :math:`\lVert D\rVert_F^2` and :math:`\lambda_i \ge \theta_i` (Cauchy
  interlacing). Long chains are nearly of low rank, so this :math:`\alpha` is
  close to :math:`\lambda_2` and the quadratic bound ends most lags after one step.

A lag is done when either bound is within ``tol`` :math:`\theta_1` (``tol`` is held at 16 ulp of the
dtype or above: in float32, 2e-6).
"""

from __future__ import annotations

from typing import Any

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


def _test(xp: Any, U: Any, Z: Any, V: Any, F2: Any, tol: float, eps: float) -> tuple[Any, Any, Any]:
    r"""Rayleigh--Ritz on the orthonormal basis ``U`` (..., N, p) of :math:`D D^\top`: ``(theta_1, done, Y)``.

    The leading axes broadcast: a window's lags (count, B, ...) share one block (B, N, p).

    ``Z`` (..., p, N) is :math:`U^\top D`, ``V`` (..., N, p) is :math:`D Z^\top`, ``F2`` the
    squared Frobenius norm of :math:`D`; ``Y`` (..., p, p) holds the eigenvectors of
    :math:`U^\top D D^\top U`, ascending (the Ritz vectors are ``U Y``).
    """
    H = xp.matmul(Z, _t(xp, Z))
    theta, Y = xp.linalg.eigh((H + _t(xp, H)) / 2)
    top, y = theta[..., -1], Y[..., -1:]
    residual = xp.matmul(V, y)[..., 0] - top[..., None] * xp.matmul(U, y)[..., 0]
    r = xp.sqrt(xp.sum(residual * residual, axis=-1))
    alpha = F2 - top - xp.sum(theta[..., :-2], axis=-1) + _SLACK_ULPS * eps * F2
    gap = top - alpha
    safe = xp.where(gap > 0, gap, xp.ones_like(gap))
    temple = xp.logical_and(gap > 0, r * r <= tol * top * safe)
    done = xp.logical_or(xp.logical_or(r <= tol * xp.abs(top), temple), top <= 0)
    return top, done, Y


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
        """Test the lags held; iterate those that fail. ``(sigma (count, B), iterations of each lag)``."""
        xp, held = self.xp, self.held
        count = len(held)
        stack = lambda i: xp.stack([entry[i] for entry in held], axis=0)  # noqa: E731
        # one batched test for the whole window: the block U (B, N, p) broadcasts over its lags
        top, done, _ = _test(xp, self.U, stack(1), stack(2), stack(3), self.tol, self.eps)
        sigma = xp.sqrt(xp.clip(top, 0.0, None))
        iterations = [1] * count
        failing = [] if bool(xp.all(done)) else [k for k in range(count) if not bool(xp.all(done[k, ...]))]
        self.restarted = bool(failing)
        if failing:
            pick = lambda i: xp.concat([held[k][i] for k in failing], axis=0)  # noqa: E731
            found, used = self._iterate(pick(0), pick(2), pick(3))
            B = self.U.shape[0]
            rows = [sigma[k, ...] for k in range(count)]
            for j, k in enumerate(failing):
                rows[k], iterations[k] = found[j * B : (j + 1) * B, ...], used
            sigma = xp.stack(rows, axis=0)
        self.held = []
        return sigma, iterations

    def _iterate(self, D: Any, V: Any, F2: Any) -> tuple[Any, int]:
        r"""Block Krylov iteration on the lags (stacked on the batch axis) whose first step failed.

        ``V`` is :math:`A U` for :math:`A = D D^\top`. A cycle builds an orthonormal basis
        :math:`K` of :math:`\operatorname{span}\{X, A X, \ldots, A^{q-1} X\}` from the block
        :math:`X = \operatorname{qr}(A U)` and takes one Rayleigh--Ritz step on it, with the test
        of :func:`_test` after each block; a cycle that fills ``q`` blocks without passing starts the
        next from :math:`A` times its top ``p`` Ritz vectors. A block costs one product of :math:`A`
        with a block, as a step of subspace iteration would, but ``q`` of those reach only
        :math:`A^q X`, while the Krylov space holds every polynomial of degree below ``q`` in
        :math:`A`: near the flat spectra of the first lags the best of them (Chebyshev's) converges
        far faster (Saad, *Numerical Methods for Large Eigenvalue Problems*, ch. 6; Musco & Musco,
        NeurIPS 2015). Returns the top singular values
        and the count of block products with :math:`A` (1 for the window's test, then one a block;
        0 after the Gram fallback, at ``max_iter``). The lags after them start from the block of the
        last of them, one step on: ``qr(A X)``.
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
                Q = _orthonormal(xp, block, blocks)
                lefts.append(xp.matmul(_t(xp, D), Q))
                images.append(xp.matmul(D, lefts[-1]))
                blocks.append(Q)
                used += 1
                # Rayleigh--Ritz on the basis so far: small next to the two passes over D
                K, AK = xp.concat(blocks, axis=-1), xp.concat(images, axis=-1)
                top, done, Y = _test(xp, K, _t(xp, xp.concat(lefts, axis=-1)), AK, F2, self.tol, self.eps)
                start = xp.matmul(AK, Y[..., -p:])  # A X for X = K Y: the top p Ritz vectors
                if bool(xp.all(done)):
                    self.U = xp.linalg.qr(start[-B:, ...])[0]
                    return xp.sqrt(xp.clip(top, 0.0, None)), used
                block = images[-1]
        self.U = xp.linalg.qr(start[-B:, ...])[0]
        gram = xp.matmul(D, _t(xp, D))
        largest = xp.max(xp.linalg.eigvalsh(gram), axis=-1)
        return xp.sqrt(xp.clip(largest, 0.0, None)), 0


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
