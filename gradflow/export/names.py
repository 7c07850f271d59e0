r"""Names and text for LaTeX: signal and parameter names, escaped prose, Unicode.

A cell's names follow the conventions of the graph's node labels
(:mod:`gradflow.graph.labels`): ``W_h`` is :math:`W_{h}`, ``c_tilde`` is
:math:`\tilde{c}`, ``alpha`` is :math:`\alpha`, ``dt`` is :math:`\Delta t`,
``layer2.h`` is :math:`h^{[2]}` and ``bwd.h`` is :math:`\overleftarrow{h}`.
This module adds what a printed equation needs beyond a label: a time in the
same superscript (:math:`h^{[2](t-1)}`), bold vectors, a trailing ``_prime``
as a prime (:math:`h'`), and Unicode letters in names (``θ_1`` is
:math:`\theta_{1}`), so that whatever a user names a cell's parts, the LaTeX
compiles with ``pdflatex``.

Prose is escaped for text mode (:func:`escape_text`): LaTeX's special
characters, and Unicode mathematics (σ′, ‖, ∘, ≤, τ, ξ, γ, ∏ ...) turned into
the matching commands, so that documents compile without Unicode fonts.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from gradflow.graph.labels import direction_of, layer_of

__all__ = ["escape_markdown", "escape_text", "latex_name", "math_unicode", "name_parts"]

_GREEK_CAPITALS = frozenset(
    ("Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega")
)
#: Spelled Greek letters (``alpha``, ``vartheta``, ``Omega``): the lowercase ones from Unicode's names.
_GREEK_NAMES = (
    frozenset(
        unicodedata.name(chr(code)).rsplit(" ", 1)[-1].lower().replace("lamda", "lambda")
        for code in range(0x3B1, 0x3CA)  # α .. ω
        if code not in (0x3BF, 0x3C2)  # omicron (a Latin o), the final sigma
    )
    | {"varepsilon", "vartheta", "varphi", "varpi", "varrho", "varsigma"}
    | _GREEK_CAPITALS
)
_ACCENTS = ("tilde", "hat", "bar", "dot", "ddot", "vec", "check", "breve")
_SPECIAL = {"dt": r"\Delta t"}
#: Unicode Greek letters whose LaTeX command is not simply their lowercased Unicode name.
_GREEK_CHARS = {
    "\u03b5": r"\varepsilon",  # ε
    "\u03f5": r"\epsilon",  # ϵ
    "\u03c6": r"\varphi",  # φ
    "\u03d5": r"\phi",  # ϕ
    "\u03d1": r"\vartheta",  # ϑ
    "\u03c2": r"\varsigma",  # ς
    "\u03d6": r"\varpi",  # ϖ
    "\u03f1": r"\varrho",  # ϱ
    "\u03bf": "o",  # ο
}
#: Mathematical Unicode symbols and their LaTeX (math mode).
_MATH_SYMBOLS = {
    "′": "'",
    "″": "''",
    "‖": r"\Vert",
    "∘": r"\circ",
    "⊙": r"\odot",
    "⊗": r"\otimes",
    "∏": r"\prod",
    "∑": r"\sum",
    "≤": r"\le",
    "≥": r"\ge",
    "≠": r"\ne",
    "≈": r"\approx",
    "∂": r"\partial",
    "∇": r"\nabla",
    "∞": r"\infty",
    "∈": r"\in",
    "→": r"\to",
    "←": r"\leftarrow",
    "⇒": r"\Rightarrow",
    "×": r"\times",
    "·": r"\cdot",
    "⋯": r"\cdots",
    "−": "-",
    "±": r"\pm",
    "⌊": r"\lfloor",
    "⌋": r"\rfloor",
    "ᵀ": r"^{\top}",
    "⊤": r"\top",
    "⁺": "^{+}",
    "⁻": "^{-}",
    "√": r"\surd",
}
#: Text-mode typography pdflatex's default fonts lack as Unicode.
_TEXT_SYMBOLS = {
    "—": "---",
    "–": "--",
    "“": "``",
    "”": "''",
    "‘": "`",
    "’": "'",
    "…": r"\ldots{}",
    "\u00a0": "~",
    "§": r"\S{}",
}
_TEXT_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "^": r"\^{}",
    "~": r"\~{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


@lru_cache(maxsize=1024)
def _unicode_math(char: str) -> str | None:
    """LaTeX (math mode) of one non-ASCII character, or None when it has none."""
    if char in _GREEK_CHARS:
        return _GREEK_CHARS[char]
    if char in _MATH_SYMBOLS:
        return _MATH_SYMBOLS[char]
    name = unicodedata.name(char, "")
    greek = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER (\w+)", name)
    if greek:
        word = greek.group(2).lower().replace("lamda", "lambda")
        if greek.group(1) == "SMALL":
            return "\\" + word
        if word.capitalize() in _GREEK_CAPITALS:
            return "\\" + word.capitalize()
        # capitals that look like Latin letters (Alpha, Beta, ...): their Latin twin, upright
        return r"\mathrm{" + _LATIN_TWINS.get(word, word) + "}"
    script = re.fullmatch(r"(SUPERSCRIPT|SUBSCRIPT) (.+)", name)
    if script and script.group(2) in _DIGITS:
        return ("^{" if script.group(1) == "SUPERSCRIPT" else "_{") + _DIGITS[script.group(2)] + "}"
    letter = re.fullmatch(
        r"(LATIN SUBSCRIPT SMALL LETTER|MODIFIER LETTER SMALL|SUPERSCRIPT LATIN SMALL LETTER) ([A-Z])", name
    )
    if letter:  # ₕ, ᵏ, ⁱ
        return (
            ("_{" if letter.group(1).startswith("LATIN SUBSCRIPT") else "^{") + letter.group(2).lower() + "}"
        )
    return None


_LATIN_TWINS = {
    "alpha": "A",
    "beta": "B",
    "epsilon": "E",
    "zeta": "Z",
    "eta": "H",
    "iota": "I",
    "kappa": "K",
    "mu": "M",
    "nu": "N",
    "omicron": "O",
    "rho": "P",
    "tau": "T",
    "chi": "X",
}
_DIGITS = {
    "ZERO": "0",
    "ONE": "1",
    "TWO": "2",
    "THREE": "3",
    "FOUR": "4",
    "FIVE": "5",
    "SIX": "6",
    "SEVEN": "7",
    "EIGHT": "8",
    "NINE": "9",
    "PLUS SIGN": "+",
    "MINUS": "-",
    "LEFT PARENTHESIS": "(",
    "RIGHT PARENTHESIS": ")",
}


def _fallback(char: str) -> str:
    """An ASCII stand-in for a character with no LaTeX: its base letter, or its code point."""
    base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return base if base.strip() else f"[U+{ord(char):04X}]"


def math_unicode(tex: str) -> str:
    r"""Replace the non-ASCII characters of a math-mode LaTeX string by commands.

    Greek letters become ``\theta``, ``\Omega``, ...; mathematical symbols
    their commands (``≤`` is ``\le``); accented letters ``\text{é}``; anything
    else an ASCII stand-in, so that pdflatex never meets a character its fonts lack.

    Examples
    --------
    >>> math_unicode("W_{θθ} + Ω")
    'W_{\\theta \\theta } + \\Omega '
    """
    if tex.isascii():
        return tex
    out = []
    for char in tex:
        if char.isascii():
            out.append(char)
            continue
        command = _unicode_math(char)
        if command is None:
            latin = 0xC0 <= ord(char) <= 0x17F and char.isalpha()
            out.append(rf"\text{{{char}}}" if latin else _fallback(char))
        else:
            # a space ends a control word before a following letter (\theta x, not \thetax)
            out.append(command + " " if command[-1].isalpha() and command.startswith("\\") else command)
    return "".join(out)


def escape_text(text: str) -> str:
    r"""Escape prose for LaTeX text mode: special characters, and Unicode mathematics.

    ``& % $ # _ { } ~ ^ \ < > |`` are escaped; Greek letters and mathematical
    symbols become ``\ensuremath{...}`` (σ′ is :math:`\sigma'`); typographic
    dashes and quotes become their LaTeX ligatures; accented Latin letters
    are kept (``inputenc`` handles them).

    Examples
    --------
    >>> print(escape_text("R&D: 50% of $x_1 ≤ γ‖W‖"))
    R\&D: 50\% of \$x\_1 \ensuremath{\le} \ensuremath{\gamma}\ensuremath{\Vert}W\ensuremath{\Vert}
    """
    out: list[str] = []
    script = ("", "")  # a run of sub- or superscript characters (ₜ₋₁) becomes one group
    for char in text:
        command = None if char.isascii() or char in _TEXT_SYMBOLS else _unicode_math(char)
        kind = command[:2] if command and command[:2] in ("_{", "^{") and command.endswith("}") else ""
        inner = (command or "")[2:-1]
        if kind and kind == script[0]:
            script = (kind, script[1] + inner)
            continue
        if script[0]:
            out.append(rf"\ensuremath{{{script[0]}{script[1]}}}}}")
            script = ("", "")
        if kind:
            script = (kind, inner)
        elif char in _TEXT_SPECIAL:
            out.append(_TEXT_SPECIAL[char])
        elif char.isascii():
            out.append(char)
        elif char in _TEXT_SYMBOLS:
            out.append(_TEXT_SYMBOLS[char])
        elif command is not None:
            out.append(rf"\ensuremath{{{command}}}")
        elif 0xC0 <= ord(char) <= 0x17F:
            out.append(char)
        else:
            out.append(_fallback(char))
    if script[0]:
        out.append(rf"\ensuremath{{{script[0]}{script[1]}}}}}")
    return "".join(out)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|$~])")


def escape_markdown(text: str) -> str:
    r"""Escape prose for Markdown (GitHub, Jupyter): backslash before ``\ ` * _ { } [ ] < > # | $ ~``.

    Examples
    --------
    >>> print(escape_markdown("x_k * 2 costs $5"))
    x\_k \* 2 costs \$5
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _word(text: str, *, base: bool) -> str:
    """LaTeX of one underscore-separated part of a name (as graph.labels writes it)."""
    if text in _GREEK_NAMES:
        return "\\" + text
    if base and text in _SPECIAL:
        return _SPECIAL[text]
    if len(text) == 1 or text.isdigit() or not base:
        return math_unicode(text)
    return r"\mathrm{" + math_unicode(text) + "}"


def _bold(head: str) -> str:
    if head.startswith(r"\mathrm{"):
        return r"\mathbf{" + head[len(r"\mathrm{") :]
    if head.isascii() and head.isalpha():
        return r"\mathbf{" + head + "}"
    return r"\boldsymbol{" + head + "}"


@lru_cache(maxsize=4096)
def name_parts(name: str, bold: bool = False) -> tuple[str, str]:
    r"""The label of ``name`` without superscript, and its bracket (``[2]``) or ''.

    Examples
    --------
    >>> name_parts("layer2.W_h")
    ('W_{h}', '[2]')
    """
    *prefixes, plain = name.split(".")
    words = [part for part in plain.split("_") if part]
    if not words:  # a name made of underscores only
        return r"\mathrm{" + plain.replace("_", r"\_") + "}", ""
    primes = ""
    while len(words) > 1 and words[-1] == "prime":
        primes += "'"
        words.pop()
    accents = []
    while len(words) > 1 and words[-1] in _ACCENTS:
        accents.append(words.pop())
    head = _word(words[0], base=True)
    if bold:
        head = _bold(head)
    for accent in reversed(accents):
        head = f"\\{accent}{{{head}}}"
    direction = direction_of(name)
    if direction is not None:
        head = (r"\overrightarrow{" if direction == "forward" else r"\overleftarrow{") + head + "}"
    subscript = ",".join(_word(word, base=False) for word in words[1:])
    label = head + primes + (f"_{{{subscript}}}" if subscript else "")
    if primes:  # h'_{1}^{(t)} would be a double superscript
        label = "{" + label + "}"
    bracket = []
    layer = layer_of(name)
    for part in prefixes:
        if re.fullmatch(r"layer\d+", part):
            continue
        if part not in ("fwd", "bwd"):
            bracket.append(r"\mathrm{" + math_unicode(part).replace("_", r"\_") + "}")
    if layer is not None:
        bracket.insert(0, str(layer))
    return label, (f"[{','.join(bracket)}]" if bracket else "")


def latex_name(name: str, time: str | None = None, *, bold: bool = False, extra: str = "") -> str:
    r"""LaTeX of a signal or parameter name, with a time and extra superscripts.

    Parameters
    ----------
    name : str
        A name of a cell (``"h"``, ``"W_h"``, ``"c_tilde"``, ``"layer2.h"``,
        ``"bwd.h"``, ``"θ_1"``, ``"h_prime"``).
    time : str, optional
        The time, already in LaTeX (``"t-1"``); written ``^{(t-1)}``.
    bold : bool, default False
        Bold base letter (:math:`\mathbf{h}`), for vectors.
    extra : str, optional
        More superscript after the time, e.g. ``\top``.

    Returns
    -------
    str
        A math-mode LaTeX fragment.

    Examples
    --------
    >>> latex_name("h", "t-1"), latex_name("W_h"), latex_name("c_tilde", "t")
    ('h^{(t-1)}', 'W_{h}', '\\tilde{c}^{(t)}')
    >>> latex_name("layer2.h", "t", extra=r"\top"), latex_name("x", "t", bold=True)
    ('h^{[2](t)\\top}', '\\mathbf{x}^{(t)}')
    """
    label, bracket = name_parts(name, bold)
    superscript = bracket + (f"({time})" if time is not None else "") + extra
    return label + (f"^{{{superscript}}}" if superscript else "")
