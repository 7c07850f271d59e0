r"""Elementwise activations, each defined once.

An :class:`Activation` is an immutable sympy object that holds a scalar
function :math:`\sigma : \mathbb{R} \to \mathbb{R}` as a ``Lambda``, its LaTeX
name, and (computed once, by sympy) its derivative :math:`\sigma'`, itself an
:class:`Activation`. Every other layer of gradflow looks activations up here:
the symbolic layer differentiates with :attr:`Activation.derivative`, the
printer uses :attr:`Activation.latex`, the numeric layer lowers
:attr:`Activation.function`.

The catalogue: identity, tanh, sigmoid, relu, leaky_relu, softsign,
hard_tanh, elu, swish (= silu for :math:`\beta = 1`), gelu, and ``generic``:
an undefined :math:`\sigma` for textbook derivations. Any user sympy
``Lambda`` of one variable whose body is a scalar expression of that variable
is accepted too (see :func:`as_activation`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef, FunctionClass, UndefinedFunction
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixElement

from gradflow.errors import CellDefinitionError, NotDifferentiableError

__all__ = [
    "CATALOGUE",
    "Activation",
    "as_activation",
    "elu",
    "gelu",
    "generic",
    "hard_tanh",
    "identity",
    "leaky_relu",
    "relu",
    "sigmoid",
    "silu",
    "softsign",
    "swish",
    "tanh",
]

#: The scalar variable every activation is written in (real, so that
#: ``Abs`` and piecewise functions differentiate).
z = sp.Symbol("z", real=True)


class Activation(sp.Basic):
    r"""An elementwise scalar function :math:`\sigma`, with its derivative.

    Parameters
    ----------
    name : str
        Name used in reprs and error messages (``"tanh"``).
    function : sympy.Lambda
        :math:`\sigma` as a one-variable ``Lambda`` with a scalar body.
    latex : str
        LaTeX name of :math:`\sigma` (``r"\tanh"``).

    Raises
    ------
    CellDefinitionError
        If ``function`` is not a one-variable Lambda with a scalar body of
        that variable alone (so the function would not be elementwise).
    NotDifferentiableError
        If sympy cannot differentiate a defined (non-generic) function.

    Examples
    --------
    >>> from gradflow.cells.activations import tanh
    >>> tanh.derivative.function(0)
    1
    >>> tanh.derivative.latex
    "\\tanh'"
    """

    def __new__(cls, name: Any, function: Any, latex: Any) -> Activation:
        """Build (and validate) an activation; see the class docstring."""
        name = name if isinstance(name, Str) else Str(str(name))
        latex = latex if isinstance(latex, Str) else Str(str(latex))
        if (
            isinstance(function, sp.Expr)
            and not isinstance(function, sp.Lambda)
            and function.free_symbols <= {z}
        ):
            body = function  # already canonical (the form sympy rebuilds from args)
        else:
            body = _canonical_body(name.name, function)
        return super().__new__(cls, name, body, latex)  # type: ignore[no-any-return]

    @property
    def name(self) -> str:
        """The activation's name."""
        return self.args[0].name  # type: ignore[attr-defined,no-any-return]

    @property
    def function(self) -> sp.Lambda:
        r""":math:`\sigma` as a sympy ``Lambda`` of ``z`` (sympy writes the identity ``Lambda(_x, _x)``)."""
        return sp.Lambda(z, self.expression)

    @property
    def latex(self) -> str:
        r"""LaTeX name, e.g. ``\tanh``."""
        return self.args[2].name  # type: ignore[attr-defined,no-any-return]

    @property
    def expression(self) -> sp.Expr:
        r""":math:`\sigma(z)` as a scalar sympy expression in ``z``."""
        return self.args[1]  # type: ignore[return-value]

    @property
    def is_generic(self) -> bool:
        r"""True for an undefined :math:`\sigma` (symbolic derivations only)."""
        return bool(self.expression.atoms(AppliedUndef))

    @property
    def derivative(self) -> Activation:
        r""":math:`\sigma'` as an :class:`Activation` (computed once)."""
        cached = _DERIVATIVES.get(self)
        if cached is None:
            cached = _differentiate(self)
            _DERIVATIVES[self] = cached
            _PRIMITIVES.setdefault(cached, self)
        return cached

    @property
    def primitive(self) -> Activation | None:
        r"""For a derivative :math:`\sigma'` made by :attr:`derivative`, the :math:`\sigma` it came from."""
        return _PRIMITIVES.get(self)

    @property
    def free_symbols(self) -> set[sp.Basic]:
        """None: the variable ``z`` is bound inside the function."""
        return set()

    def _xreplace(self, rule: Any) -> tuple[sp.Basic, bool]:
        # An activation is a constant of the expressions it sits in: substitutions
        # (time shifts, sizes, sympy's own dummies) never reach inside it.
        if self in rule:
            return rule[self], True
        return self, False

    def _eval_subs(self, old: Any, new: Any) -> Any:
        return self

    def __call__(self, arg: Any) -> sp.Expr:  # type: ignore[override]
        r"""Apply :math:`\sigma` to a scalar sympy expression."""
        if self.expression.has(sp.Derivative):  # generic σ': keep it a Subs at the point
            return self.expression.subs(z, arg)  # type: ignore[no-any-return]
        return self.expression.xreplace({z: sp.sympify(arg)})  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    __str__ = __repr__

    def _sympystr(self, printer: Any) -> str:
        return self.name


_DERIVATIVES: dict[Activation, Activation] = {}
_PRIMITIVES: dict[Activation, Activation] = {}


def _canonical_body(name: str, function: Any) -> sp.Expr:
    """Return the body of ``function`` written in ``z``, or raise CellDefinitionError."""
    if isinstance(function, UndefinedFunction):
        return sp.Lambda(z, function(z))
    if isinstance(function, FunctionClass):
        try:
            function = sp.Lambda(z, function(z))
        except (TypeError, ValueError) as err:
            raise CellDefinitionError(
                f"activation {name!r}: the sympy function {function} cannot be "
                f"applied to one scalar argument ({err})"
            ) from err
    elif not isinstance(function, sp.Lambda) and callable(function):
        try:
            body = function(z)
        except Exception as err:  # the user's callable may raise anything
            raise CellDefinitionError(
                f"activation {name!r}: calling the function on a scalar sympy "
                f"symbol failed ({type(err).__name__}: {err}); an activation "
                "must map one scalar to one scalar"
            ) from err
        function = sp.Lambda(z, body)
    if not isinstance(function, sp.Lambda):
        raise CellDefinitionError(
            f"activation {name!r} must be a sympy Lambda of one variable, a sympy "
            f"function, or a Python callable; got {type(function).__name__} {function!r}"
        )
    variables = function.variables
    if len(variables) != 1:
        raise CellDefinitionError(
            f"activation {name!r} takes {len(variables)} arguments {variables}; an "
            "elementwise activation takes exactly one scalar, e.g. Lambda(z, tanh(z))"
        )
    body = function.expr
    if isinstance(body, (sp.MatrixBase, sp.MatrixExpr)) or not isinstance(body, sp.Expr):
        raise CellDefinitionError(
            f"activation {name!r} is not elementwise: its body {body} is a "
            f"{type(body).__name__}, not a scalar expression of its variable "
            "(functions such as softmax that mix components are not activations)"
        )
    (var,) = variables
    extra = body.free_symbols - {var}
    body = body.xreplace({var: z})
    if extra:
        names = ", ".join(sorted(str(s) for s in extra))
        raise CellDefinitionError(
            f"activation {name!r} has body {body} with free symbols {names} besides "
            "its variable; fix constants to numbers (e.g. Lambda(z, Max(z/100, z)))"
        )
    if body.has(sp.MatrixSymbol, MatrixElement):
        raise CellDefinitionError(
            f"activation {name!r} reads matrix entries ({body}): an activation must "
            "act on each component separately"
        )
    return body  # type: ignore[no-any-return]


def _differentiate(activation: Activation) -> Activation:
    body = activation.expression
    try:
        derivative = sp.diff(body, z)
    except Exception as err:  # sympy raises many kinds here
        raise NotDifferentiableError(
            f"sympy cannot differentiate activation {activation.name!r} ({body}): {type(err).__name__}: {err}"
        ) from err
    if not activation.is_generic and derivative.has(sp.Derivative, sp.Subs):
        raise NotDifferentiableError(
            f"sympy cannot differentiate activation {activation.name!r} ({body}): "
            f"the result {derivative} is unevaluated; give the activation in "
            "closed form, or as a Piecewise for a piecewise function"
        )
    if derivative.has(sp.DiracDelta):
        derivative = derivative.replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    return Activation(f"{activation.name}'", derivative, activation.latex + "'")


# --- the catalogue -----------------------------------------------------------

identity = Activation("identity", sp.Lambda(z, z), r"\operatorname{id}")
tanh = Activation("tanh", sp.Lambda(z, sp.tanh(z)), r"\tanh")
sigmoid = Activation("sigmoid", sp.Lambda(z, 1 / (1 + sp.exp(-z))), r"\sigma")
relu = Activation("relu", sp.Lambda(z, sp.Piecewise((0, z < 0), (z, True))), r"\operatorname{ReLU}")
softsign = Activation("softsign", sp.Lambda(z, z / (1 + sp.Abs(z))), r"\operatorname{softsign}")
hard_tanh = Activation(
    "hard_tanh",
    sp.Lambda(z, sp.Piecewise((-1, z < -1), (1, z > 1), (z, True))),
    r"\operatorname{hardtanh}",
)
gelu = Activation("gelu", sp.Lambda(z, z * (1 + sp.erf(z / sp.sqrt(2))) / 2), r"\operatorname{GELU}")


def _exact(value: Any, what: str) -> sp.Expr:
    """A number as an exact sympy number (floats through their decimal text)."""
    try:
        number = sp.Rational(str(value)) if isinstance(value, float | str) else sp.sympify(value)
    except (sp.SympifyError, TypeError, ValueError) as err:
        raise CellDefinitionError(f"{what} must be a number, got {value!r}") from err
    if not isinstance(number, sp.Expr) or not (number.is_number and number.is_real and number.is_finite):
        raise CellDefinitionError(f"{what} must be a real number, got {value!r}")
    return number  # type: ignore[no-any-return]


_DEFAULT_SLOPE = sp.Rational(1, 100)


def leaky_relu(slope: Any = _DEFAULT_SLOPE) -> Activation:
    r"""Leaky ReLU :math:`\max(\text{slope}\cdot z, z)`, slope in [0, 1) (default 0.01)."""
    a = _exact(slope, "leaky_relu slope")
    if not (0 <= a < 1):
        raise CellDefinitionError(f"leaky_relu slope must lie in [0, 1), got {slope!r}")
    name = "leaky_relu" if a == sp.Rational(1, 100) else f"leaky_relu({a})"
    return Activation(
        name, sp.Lambda(z, sp.Piecewise((a * z, z < 0), (z, True))), r"\operatorname{LeakyReLU}"
    )


def elu(alpha: Any = 1) -> Activation:
    r"""ELU :math:`z` for :math:`z \ge 0`, :math:`\alpha(e^z - 1)` below (Clevert et al. 2016)."""
    a = _exact(alpha, "elu alpha")
    if not a > 0:
        raise CellDefinitionError(f"elu alpha must be positive, got {alpha!r}")
    name = "elu" if a == 1 else f"elu({a})"
    return Activation(
        name, sp.Lambda(z, sp.Piecewise((a * (sp.exp(z) - 1), z < 0), (z, True))), r"\operatorname{ELU}"
    )


def swish(beta: Any = 1) -> Activation:
    r"""Swish :math:`z\,\mathrm{sigmoid}(\beta z)` (Ramachandran et al. 2017); SiLU at beta = 1."""
    b = _exact(beta, "swish beta")
    if not b > 0:
        raise CellDefinitionError(f"swish beta must be positive, got {beta!r}")
    name = "swish" if b == 1 else f"swish({b})"
    return Activation(name, sp.Lambda(z, z / (1 + sp.exp(-b * z))), r"\operatorname{swish}")


silu = Activation("silu", z / (1 + sp.exp(-z)), r"\operatorname{SiLU}")
r"""SiLU :math:`z\,\mathrm{sigmoid}(z)` (Hendrycks & Gimpel 2016), swish with beta = 1."""


def generic(name: str = "sigma", latex: str = r"\sigma") -> Activation:
    r"""An undefined activation :math:`\sigma` for textbook derivations.

    Its derivative is the unevaluated :math:`\sigma'`; the numeric layer
    refuses it (there is nothing to compute).
    """
    return Activation(name, sp.Lambda(z, sp.Function(name, real=True)(z)), latex)


#: Name -> factory of every catalogue activation (names usable in equations).
CATALOGUE: dict[str, Callable[[], Activation]] = {
    "identity": lambda: identity,
    "tanh": lambda: tanh,
    "sigmoid": lambda: sigmoid,
    "relu": lambda: relu,
    "leaky_relu": leaky_relu,
    "softsign": lambda: softsign,
    "hard_tanh": lambda: hard_tanh,
    "elu": elu,
    "swish": swish,
    "silu": lambda: silu,
    "gelu": lambda: gelu,
    "sigma": generic,
}


def as_activation(spec: Any, name: str | None = None) -> Activation:
    r"""Turn a name, an :class:`Activation`, a sympy ``Lambda``/function or a callable into an Activation.

    Parameters
    ----------
    spec : str, Activation, sympy.Lambda, sympy function or callable
        A catalogue name (``"tanh"``), an activation, or a scalar function.
    name : str, optional
        Name for a user function (default: derived from ``spec``).

    Raises
    ------
    CellDefinitionError
        For an unknown catalogue name or a function that is not elementwise.
    NotDifferentiableError
        If sympy cannot differentiate the function.

    Examples
    --------
    >>> import sympy as sp
    >>> as_activation("sigmoid").latex
    '\\sigma'
    >>> x = sp.Symbol("x")
    >>> as_activation(sp.Lambda(x, x**3 / 3), name="cubic").derivative.function(2)
    4
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        factory = CATALOGUE.get(spec)
        if factory is None:
            known = ", ".join(sorted(CATALOGUE))
            raise CellDefinitionError(
                f"unknown activation {spec!r}; the catalogue has {known} "
                "(or pass a sympy Lambda of one variable)"
            )
        return factory()
    label = name or getattr(spec, "__name__", None) or "f"
    if label == "<lambda>":
        label = "f"
    activation = Activation(
        label, spec, rf"\operatorname{{{_latex_safe(label)}}}" if len(label) > 1 else label
    )
    if name is None:  # sympy's tanh is the catalogue's tanh, with its LaTeX name
        for factory in CATALOGUE.values():
            known = factory()
            if known.expression == activation.expression:
                return known
    _ = activation.derivative  # differentiate now: a bad function fails at definition
    return activation


def _latex_safe(text: str) -> str:
    return "".join(ch if ch.isalnum() else r"\_" if ch == "_" else "" for ch in text) or "f"
