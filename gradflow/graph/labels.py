r"""Names of unrolled-graph nodes: LaTeX labels, layers and directions.

A node of an unrolled graph is ``(name, t)``; the name may carry the prefixes
of a combined cell (``layer2.h``, ``fwd.h``, ``layer1.bwd.c_tilde``). This
module reads those prefixes and writes the textbook label of a node:

==========================  ======================================
``("h", 3)``                ``h^{(3)}``
``("c_tilde", 2)``          ``\tilde{c}^{(2)}``
``("W_h", None)``           ``W_{h}``
``("alpha", None)``         ``\alpha``
``("layer2.h", 3)``         ``h^{[2](3)}``
``("layer2.W_h", None)``    ``W_{h}^{[2]}``
``("fwd.h", 3)``            ``\overrightarrow{h}^{(3)}``
``("bwd.h", 3)``            ``\overleftarrow{h}^{(3)}``
==========================  ======================================

The layer index goes in square brackets in the superscript, before the time
(the ``a^{[l](t)}`` convention of deep-learning course notes), so that a
parameter's own subscript (``W_{h}``) is never doubled.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["direction_of", "latex_label", "layer_of"]

_GREEK = frozenset(
    [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "varepsilon",
        "zeta",
        "eta",
        "theta",
        "vartheta",
        "iota",
        "kappa",
        "mu",
        "nu",
        "xi",
        "pi",
        "rho",
        "sigma",
        "tau",
        "upsilon",
        "phi",
        "varphi",
        "chi",
        "psi",
        "omega",
        "Gamma",
        "Delta",
        "Theta",
        "Lambda",
        "Xi",
        "Pi",
        "Sigma",
        "Upsilon",
        "Phi",
        "Psi",
        "Omega",
    ]
)
_ACCENTS = frozenset({"tilde", "hat", "bar", "dot", "ddot", "vec", "check", "breve"})
_SPECIAL = {"dt": r"\Delta t"}
_LAYER = re.compile(r"layer(\d+)\Z")
_DIRECTIONS = {"fwd": "forward", "bwd": "backward"}


@lru_cache(maxsize=4096)
def layer_of(name: str) -> int | None:
    """The layer ``K`` of the outermost ``layerK.`` prefix of ``name``, or None.

    Examples
    --------
    >>> layer_of("layer2.W_h"), layer_of("layer1.fwd.h"), layer_of("h")
    (2, 1, None)
    """
    for part in name.split(".")[:-1]:
        match = _LAYER.match(part)
        if match:
            return int(match.group(1))
    return None


@lru_cache(maxsize=4096)
def direction_of(name: str) -> str | None:
    """``"forward"`` or ``"backward"`` from ``fwd.``/``bwd.`` prefixes of ``name``, else None.

    Nested directions compose as time reversals: an odd number of ``bwd.``
    prefixes runs backwards.

    Examples
    --------
    >>> direction_of("fwd.h"), direction_of("layer2.bwd.c"), direction_of("x")
    ('forward', 'backward', None)
    """
    prefixes = [part for part in name.split(".")[:-1] if part in _DIRECTIONS]
    if not prefixes:
        return None
    return "backward" if prefixes.count("bwd") % 2 else "forward"


def _word(text: str, *, base: bool) -> str:
    """LaTeX of one underscore-separated part of a name."""
    if text in _GREEK:
        return "\\" + text
    if base and text in _SPECIAL:
        return _SPECIAL[text]
    if len(text) == 1 or text.isdigit() or not base:
        return text
    return r"\mathrm{" + text + "}"


def _symbol(name: str) -> tuple[str, str]:
    """The head (base letter with accents) and the subscript of a plain name."""
    parts = [part for part in name.split("_") if part]
    if not parts:  # a name made of underscores only
        return r"\mathrm{" + name.replace("_", r"\_") + "}", ""
    accents: list[str] = []
    while len(parts) > 1 and parts[-1] in _ACCENTS:
        accents.append(parts.pop())
    head = _word(parts[0], base=True)
    for accent in reversed(accents):
        head = f"\\{accent}{{{head}}}"
    return head, ",".join(_word(part, base=False) for part in parts[1:])


def latex_label(name: str, t: int | None = None) -> str:
    r"""The LaTeX label of the node ``(name, t)`` of an unrolled graph.

    Parameters
    ----------
    name : str
        A signal or parameter name, possibly with combinator prefixes
        (``layer2.``, ``fwd.``, ``bwd.``; other prefixes are shown in the
        bracket as upright text).
    t : int or None
        The time step; None for parameters and the total loss.

    Returns
    -------
    str
        A LaTeX fragment (math mode, without dollars).

    Examples
    --------
    >>> latex_label("h", 3)
    'h^{(3)}'
    >>> latex_label("c_tilde", 2)
    '\\tilde{c}^{(2)}'
    >>> latex_label("layer2.W_h")
    'W_{h}^{[2]}'
    >>> latex_label("bwd.h", 4)
    '\\overleftarrow{h}^{(4)}'
    """
    label, bracket = _pieces(name)
    superscript = bracket + (f"({t})" if t is not None else "")
    return label + (f"^{{{superscript}}}" if superscript else "")


@lru_cache(maxsize=4096)
def _pieces(name: str) -> tuple[str, str]:
    """The label of ``name`` without superscript, and its bracket (``[2]``) or ''."""
    *prefixes, plain = name.split(".")
    head, subscript = _symbol(plain)
    direction = direction_of(name)
    if direction is not None:
        arrow = r"\overrightarrow" if direction == "forward" else r"\overleftarrow"
        head = f"{arrow}{{{head}}}"
    label = head + (f"_{{{subscript}}}" if subscript else "")
    bracket = []
    for part in prefixes:
        match = _LAYER.match(part)
        if match:
            bracket.append(match.group(1))
        elif part not in _DIRECTIONS:
            bracket.append(r"\mathrm{" + part.replace("_", r"\_") + "}")
    return label, (f"[{','.join(bracket)}]" if bracket else "")
