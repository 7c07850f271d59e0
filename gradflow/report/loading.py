r"""A trained PyTorch model from a file: TorchScript, a pickled ``nn.Module``, or a ``state_dict``.

:func:`load_recurrent` returns the recurrent layer a diagnosis analyses, as a plain ``torch.nn.RNN``,
``LSTM`` or ``GRU`` (what :func:`gradflow.from_torch` reads), whatever the file held:

* a TorchScript archive (``torch.jit.save``): its scripted ``RNN``/``LSTM``/``GRU`` submodule is
  rebuilt from its hyperparameters and weights (a traced module keeps no hyperparameters: its
  weights are read as a ``state_dict``);
* a pickled module (``torch.save(model)``): unpickling runs code named in the file, and its classes
  must be importable -- only analyse files you trust;
* a ``state_dict`` (``torch.save(model.state_dict())``): the layer is built from ``--arch``
  (``"lstm(input=8, hidden=32, layers=2, bidirectional)"``), or, for an LSTM or GRU, from the
  weights' shapes alone.

A model may hold other layers (an embedding, a head): the recurrent layer is found by name
(``module=``) or is the only one.
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradflow._checks import is_int
from gradflow.errors import UsageError

__all__ = ["Architecture", "find_recurrent", "load_recurrent", "parse_arch"]

_KINDS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
#: Gate blocks per kind in weight_ih (rows = blocks * hidden).
_BLOCKS = {"RNN": 1, "GRU": 3, "LSTM": 4}


@dataclass(frozen=True)
class Architecture:
    """A recurrent layer's hyperparameters, as ``torch.nn.RNN/LSTM/GRU`` take them."""

    kind: str  # "RNN", "LSTM" or "GRU"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    nonlinearity: str = "tanh"

    def build(self) -> Any:
        """The module (float64, eval mode), with fresh weights."""
        import torch

        nn = torch.nn
        options: dict[str, Any] = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "bias": self.bias,
        }
        if self.kind == "RNN":
            options["nonlinearity"] = self.nonlinearity
        return getattr(nn, self.kind)(**options).double().eval()

    def describe(self) -> str:
        """``lstm(input=8, hidden=32, layers=2, bidirectional)``."""
        parts = [f"input={self.input_size}", f"hidden={self.hidden_size}", f"layers={self.num_layers}"]
        parts += ["bidirectional"] if self.bidirectional else []
        parts += ["bias=False"] if not self.bias else []
        parts += [f"nonlinearity={self.nonlinearity}"] if self.kind == "RNN" else []
        return f"{self.kind.lower()}({', '.join(parts)})"


def parse_arch(text: str) -> Architecture:
    """An architecture from ``--arch``: ``"lstm(input=8, hidden=32, layers=2, bidirectional)"``.

    Keys: ``input``, ``hidden`` (required), ``layers`` (1), ``bidirectional`` (a flag, or
    ``=True``), ``bias`` (True), ``nonlinearity`` (``tanh`` or ``relu``, an ``rnn`` only).

    Raises
    ------
    UsageError
        For another kind, an unknown key, a missing size, or a value of the wrong type.

    Examples
    --------
    >>> parse_arch("lstm(input=8, hidden=32, layers=2, bidirectional)")
    Architecture(kind='LSTM', input_size=8, hidden_size=32, num_layers=2, bidirectional=True, bias=True, nonlinearity='tanh')
    """
    match = re.fullmatch(r"\s*(\w+)\s*\((.*)\)\s*", text or "")
    if match is None or match[1].lower() not in _KINDS:
        raise UsageError(
            f"--arch {text!r} must look like lstm(input=8, hidden=32, layers=2, bidirectional) (rnn, lstm or gru)"
        )
    kind = _KINDS[match[1].lower()]
    values: dict[str, Any] = {}
    for piece in (p.strip() for p in match[2].split(",") if p.strip()):
        key, sep, value = piece.partition("=")
        key = key.strip()
        if not sep:
            values[key] = True
            continue
        try:
            values[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            values[key] = value.strip()
    known = {"input", "hidden", "layers", "bidirectional", "bias", "nonlinearity"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"--arch {text!r}: unknown {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
        )
    for key in ("input", "hidden", "layers"):
        value = values.get(key, 1 if key == "layers" else None)
        if value is None or not is_int(value) or int(value) < 1:
            raise UsageError(
                f"--arch {text!r}: {key} must be a positive integer" + ("" if value else " (it is required)")
            )
    for key in ("bidirectional", "bias"):
        if key in values and not isinstance(values[key], bool):
            raise UsageError(f"--arch {text!r}: {key} is True or False, got {values[key]!r}")
    nonlinearity = values.get("nonlinearity", "tanh")
    if nonlinearity not in ("tanh", "relu") or ("nonlinearity" in values and kind != "RNN"):
        raise UsageError(f"--arch {text!r}: nonlinearity is tanh or relu, for an rnn only")
    return Architecture(
        kind,
        values["input"],
        values["hidden"],
        values.get("layers", 1),
        values.get("bidirectional", False),
        values.get("bias", True),
        nonlinearity,
    )


def _recurrent_of_script(module: Any) -> Architecture | None:
    """The architecture of a scripted ``RNN``/``LSTM``/``GRU`` (None when it is not one, or traced)."""
    if getattr(module, "original_name", None) not in ("RNN", "LSTM", "GRU"):
        return None
    try:
        mode = str(module.mode)
        if int(getattr(module, "proj_size", 0)) > 0:
            raise UsageError("the LSTM has proj_size > 0: gradflow's lstm cell has no projection of h")
        return Architecture(
            "RNN" if mode.startswith("RNN") else mode,
            int(module.input_size),
            int(module.hidden_size),
            int(module.num_layers),
            bool(module.bidirectional),
            bool(module.bias),
            "relu" if mode == "RNN_RELU" else "tanh",
        )
    except AttributeError:  # traced: no hyperparameters kept
        return None


def find_recurrent(model: Any, name: str | None = None) -> tuple[str, Any]:
    """``(name, module)`` of the recurrent layer in a model (a module, scripted or not).

    Raises
    ------
    UsageError
        When the model has none, has several and ``name`` is not given, or has none called ``name``.
    """
    import torch

    found = []
    for path, sub in model.named_modules():
        if isinstance(sub, torch.nn.RNNBase) or getattr(sub, "original_name", None) in ("RNN", "LSTM", "GRU"):
            found.append((path, sub))
    if name is not None:
        chosen = [(p, s) for p, s in found if p == name]
        if not chosen:
            names = ", ".join(repr(p) for p, _ in found) or "none"
            raise UsageError(f"the model has no recurrent layer {name!r}; its recurrent layers: {names}")
        return chosen[0]
    if not found:
        raise UsageError(
            f"the model ({type(model).__name__}) holds no torch.nn.RNN, LSTM or GRU; gradflow analyses those"
        )
    if len(found) > 1:
        names = ", ".join(repr(p) for p, _ in found)
        raise UsageError(f"the model holds several recurrent layers ({names}); choose one with --module")
    return found[0]


def _as_plain(path: str, module: Any) -> Any:
    """A plain float64 ``torch.nn`` module with the weights of ``module`` (scripted or not)."""
    import torch

    if isinstance(module, torch.nn.RNNBase):
        return _copy(module)
    arch = _recurrent_of_script(module)
    weights = {k: v for k, v in module.state_dict().items()}
    if arch is None:
        arch = infer_architecture(weights, path or "the model")
    return _with_weights(arch, weights, path or "the model")


def _copy(module: Any) -> Any:
    """A float64 eval-mode copy of a torch.nn recurrent module (the caller's stays as it is)."""
    import copy

    return copy.deepcopy(module).double().eval()


def infer_architecture(weights: Mapping[str, Any], where: str) -> Architecture:
    """An LSTM's or GRU's architecture from its weights' shapes.

    Raises
    ------
    UsageError
        When the weights are not a recurrent layer's, or are an ``nn.RNN``'s (whose nonlinearity
        the weights do not say).
    """
    if "weight_ih_l0" not in weights or "weight_hh_l0" not in weights:
        raise UsageError(
            f"{where}: no weight_ih_l0 / weight_hh_l0: not the weights of a torch.nn.RNN, LSTM or GRU"
        )
    rows, inputs = (int(d) for d in weights["weight_ih_l0"].shape)
    hidden = int(weights["weight_hh_l0"].shape[1])
    blocks = rows // hidden
    kind = {4: "LSTM", 3: "GRU", 1: "RNN"}.get(blocks)
    if kind is None or blocks * hidden != rows:
        raise UsageError(
            f"{where}: weight_ih_l0 has {rows} rows for hidden size {hidden}: not an RNN, LSTM or GRU"
        )
    if kind == "RNN":
        raise UsageError(
            f"{where}: the weights are an nn.RNN's, which do not say its nonlinearity; pass "
            "--arch 'rnn(input=..., hidden=..., nonlinearity=tanh)' (or relu)"
        )
    layers = 1 + max(int(m[1]) for k in weights if (m := re.fullmatch(r"weight_ih_l(\d+)", k)))
    return Architecture(
        kind,
        inputs,
        hidden,
        layers,
        "weight_ih_l0_reverse" in weights,
        "bias_ih_l0" in weights,
    )


def _with_weights(arch: Architecture, weights: Mapping[str, Any], where: str) -> Any:
    module = arch.build()
    expected = module.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise UsageError(
            f"{where}: the weights do not fit {arch.describe()}"
            + (f"; missing {', '.join(missing[:4])}" if missing else "")
            + (f"; unexpected {', '.join(extra[:4])}" if extra else "")
        )
    for key, value in weights.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise UsageError(
                f"{where}: {key} has shape {tuple(value.shape)}, but {arch.describe()} needs "
                f"{tuple(expected[key].shape)}"
            )
    module.load_state_dict({k: v.double() for k, v in weights.items()})
    return module


def _state_dict_layer(
    weights: Mapping[str, Any], arch: Architecture | None, name: str | None, where: str
) -> tuple[str, Any]:
    """The recurrent layer of a state_dict: its keys share a prefix before ``weight_ih_l0``."""
    prefixes = sorted({k[: -len("weight_ih_l0")] for k in weights if k.endswith("weight_ih_l0")})
    if not prefixes:
        raise UsageError(f"{where}: the state_dict holds no recurrent layer (no key ending in weight_ih_l0)")
    if name is not None:
        prefix = f"{name}." if name else ""
        if prefix not in prefixes:
            raise UsageError(
                f"{where}: no recurrent layer {name!r} in the state_dict; its layers: {', '.join(p.rstrip('.') or '(top)' for p in prefixes)}"
            )
    elif len(prefixes) > 1:
        raise UsageError(
            f"{where}: several recurrent layers ({', '.join(p.rstrip('.') for p in prefixes)}); choose one with --module"
        )
    else:
        prefix = prefixes[0]
    layer = {
        k[len(prefix) :]: v
        for k, v in weights.items()
        if k.startswith(prefix) and re.fullmatch(r"(weight|bias)_(ih|hh)_l\d+(_reverse)?", k[len(prefix) :])
    }
    chosen = arch if arch is not None else infer_architecture(layer, where)
    return prefix.rstrip("."), _with_weights(chosen, layer, where)


def load_recurrent(
    path: str | os.PathLike[str], *, arch: str | None = None, module: str | None = None
) -> tuple[str, Any]:
    """The recurrent layer of a saved model: ``(its name in the model, a float64 torch.nn module)``.

    Raises
    ------
    UsageError
        For a missing file, one that is neither TorchScript nor a torch pickle, a model without
        (or with several, and no ``module``) recurrent layers, weights that do not fit ``arch``.
    BackendUnavailableError
        When PyTorch is not installed.
    """
    from gradflow.numeric._torch_layout import _torch

    torch = _torch()
    source = Path(path)
    if not source.is_file():
        raise UsageError(f"{path}: no such file")
    where = str(path)
    chosen = parse_arch(arch) if arch is not None else None
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; archives made with it remain
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(source), map_location="cpu")
    except (RuntimeError, ValueError, OSError):
        scripted = None
    if scripted is not None:
        name, layer = find_recurrent(scripted, module)
        if chosen is not None:
            return name, _with_weights(chosen, layer.state_dict(), where)
        return name, _as_plain(name, layer)
    try:
        loaded = torch.load(str(source), map_location="cpu", weights_only=True)
    except Exception:  # not plain weights: a pickled module (unpickling runs code from the file)
        try:
            loaded = torch.load(str(source), map_location="cpu", weights_only=False)
        except Exception as err:
            raise UsageError(
                f"{where}: cannot load it as TorchScript, a state_dict or a pickled module "
                f"({type(err).__name__}: {err}); a pickled model's classes must be importable"
            ) from err
    if isinstance(loaded, Mapping):
        if not all(hasattr(v, "shape") for v in loaded.values()):
            raise UsageError(f"{where}: a dict, but not a state_dict of tensors")
        return _state_dict_layer(loaded, chosen, module, where)
    if isinstance(loaded, torch.nn.Module):
        name, layer = find_recurrent(loaded, module)
        if chosen is not None:
            return name, _with_weights(chosen, layer.state_dict(), where)
        return name, _as_plain(name, layer)
    raise UsageError(f"{where}: holds a {type(loaded).__name__}, not a model or a state_dict")


def describe_module(module: Any) -> str:
    """``lstm(input=8, hidden=32, layers=2, bidirectional)`` of a torch.nn recurrent module."""
    arch = Architecture(
        "RNN" if module.mode.startswith("RNN") else module.mode,
        int(module.input_size),
        int(module.hidden_size),
        int(module.num_layers),
        bool(module.bidirectional),
        bool(module.bias),
        "relu" if module.mode == "RNN_RELU" else "tanh",
    )
    return arch.describe()
