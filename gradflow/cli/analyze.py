r"""``gradflow analyze MODEL``: why a trained PyTorch model's gradients vanish or explode (:mod:`gradflow.report.model`).

MODEL is a file: TorchScript (``torch.jit.save``), a pickled module (``torch.save(model)``:
unpickling runs code from the file; only analyse files you trust), or a ``state_dict``
(``torch.save(model.state_dict())``, with ``--arch`` for an ``nn.RNN``'s). The diagnosis --
regime per layer and direction with its confidence, chain norms against the bound, the gradient
reaching each input step, Lyapunov spectra, gate statistics and memory time constants -- is
printed in plain words and written to a folder (``index.md`` and figures).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from gradflow.cli.specs import positive
from gradflow.errors import UsageError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Add ``gradflow analyze`` to the command line's subparsers."""
    parser = sub.add_parser(
        "analyze",
        help="diagnose a trained PyTorch RNN/LSTM/GRU: regimes, gradient per step, gates (a folder)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("model", help="TorchScript file, pickled module, or state_dict (.pt)")
    parser.add_argument(
        "--arch", help="for a state_dict: e.g. 'lstm(input=8, hidden=32, layers=2, bidirectional)'"
    )
    parser.add_argument("--module", help="the recurrent layer's name in the model, when it holds several")
    parser.add_argument(
        "--inputs", help="input sequences, .npy: (T, B, input_size), or (B, T, ...) with --batch-first"
    )
    parser.add_argument(
        "--batch-first", action="store_true", help="--inputs and --loss-grad are (B, T, size)"
    )
    parser.add_argument(
        "--loss-grad", help="gradient of the loss at the output, .npy, laid out like the output"
    )
    parser.add_argument(
        "-T",
        type=functools.partial(positive, int),
        default=100,
        help="steps of the default inputs (default 100)",
    )
    parser.add_argument(
        "-B",
        type=functools.partial(positive, int),
        default=8,
        help="sequences of the default inputs (default 8)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the default inputs and loss (default 0)")
    parser.add_argument("--out", help="folder to write (default MODEL-diagnosis)")
    parser.add_argument("--force", action="store_true", help="replace the folder if it exists")
    parser.set_defaults(run=_cmd_analyze)


def _array(path: str | None, what: str) -> Any:
    if path is None:
        return None
    import numpy as np

    source = Path(path)
    if not source.is_file():
        raise UsageError(f"{what} {path}: no such file")
    try:
        return np.load(source, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UsageError(f"{what} {path}: not a .npy array of numbers ({err})") from err


def _cmd_analyze(args: argparse.Namespace) -> int:
    from gradflow.report.model import analyze

    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    out = Path(args.out) if args.out else Path(f"{Path(args.model).stem}-diagnosis")
    if out.exists() and not args.force:  # before the work: a diagnosis must not be lost to a bad path
        raise UsageError(f"{out} exists; pass --force to replace it, or --out to choose another folder")
    run = functools.partial(
        analyze,
        args.model,
        _array(args.inputs, "--inputs"),
        loss_grad=_array(args.loss_grad, "--loss-grad"),
        batch_first=args.batch_first,
        T=args.T,
        B=args.B,
        seed=args.seed,
        name=args.module,
        arch=args.arch,
    )
    diagnosis = run()
    print(
        f"{diagnosis.model}"
        + (f" ('{diagnosis.where}' in {args.model})" if diagnosis.where else f" ({args.model})")
    )
    for line in diagnosis.summary():
        print(f"- {line}")
    diagnosis.write(out, force=args.force)
    print(f"wrote {out}/ (index.md, figures/)")
    return 0
