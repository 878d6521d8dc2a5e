"""Models that ship inside gannet, loaded by name: `gannet sample mnist`, `load_generator("mnist")`.

Each is a weights-only checkpoint in gannet/assets/pretrained/ (G and D, the config in its
metadata, with the command that trained it, its seed, gannet's version, the date and its
scores), listed in manifest.json with its SHA-256. scripts/ship_pretrained.py writes both.
Wherever a run directory or checkpoint is taken, a path that exists wins over a name.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

FOLDER = Path(__file__).parent / "assets" / "pretrained"
MANIFEST = FOLDER / "manifest.json"


@cache
def manifest() -> dict[str, dict]:
    """The shipped models by name: file, sha256, description, scores, command, seed, version, date."""
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def names() -> list[str]:
    return list(manifest())


def shipped_path(source: str | os.PathLike) -> Path | None:
    """The shipped file `source` names, or None: a path that exists, or any other word."""
    name = os.fspath(source)
    if name not in manifest() or Path(name).exists():
        return None
    return FOLDER / manifest()[name]["file"]


def _shipped_name(source: str | os.PathLike) -> str | None:
    """The shipped model `source` is, by name or by its file's path; None for anything else."""
    path = shipped_path(source) or Path(source)
    if path.parent.resolve() != FOLDER.resolve():
        return None
    return next((name for name, entry in manifest().items() if entry["file"] == path.name), None)


def name_of(source: str | os.PathLike) -> str:
    """The shipped model's name for a name or its file's path ('mnist'); else the path's name."""
    return _shipped_name(source) or Path(source).name


def hidden(source: str | os.PathLike) -> str:
    """', a path here that hides the shipped model NAME (its file: PATH)' when `source` is a
    shipped model's name but a file or folder of that name is in the way; else ''."""
    name = os.fspath(source)
    if name not in manifest() or not Path(name).exists():
        return ""
    return f"; {name} here hides the shipped model {name!r}, whose file is {FOLDER / manifest()[name]['file']}"


def refuse_history(source: str | os.PathLike, what: str) -> None:
    """A GannetError when `source` names a shipped model, which has no `what` (training state,
    metrics, checkpoints): it is one weights file."""
    from gannet.errors import GannetError

    if shipped_path(source) is not None:
        raise GannetError(f"{source} is a model that ships with gannet: one weights file, with no {what}.")


def is_shipped(source: str | os.PathLike) -> bool:
    """Whether `source` resolves to a shipped model (by name, or by the file's own path)."""
    return _shipped_name(source) is not None


def describe() -> str:
    """`gannet pretrained`: each name, what it is and its scores, one paragraph each."""
    if not manifest():
        return "gannet ships no models in this installation (gannet/assets/pretrained/manifest.json is missing)."
    blocks = []
    for name, entry in sorted(manifest().items()):
        blocks.append(
            f"{name}\n    {entry['description']}\n    scores: {scores_line(entry['scores'])}\n"
            f"    trained with: {entry['command']}  (seed {entry['seed']}, gannet {entry['gannet_version']}, "
            f"{entry['date']})\n    file: {FOLDER / entry['file']} ({entry['dtype']}, {entry['bytes'] / 1e6:.1f} MB)"
        )
    return "\n".join(blocks) + (
        "\nA name goes wherever a generator is read (sample, eval, figures, export, infer, complete): "
        "gannet sample mnist -o digits.png; a conditional model draws a chosen digit with --label."
    )


def scores_line(scores: dict[str, float]) -> str:
    """'Parzen 223.58 ± 1.97 nats (sigma 0.100), MNIST FID 11.59', of the scores there are."""
    parts = []
    if "parzen" in scores:
        parzen = f"Parzen {scores['parzen']:.2f} ± {scores['parzen_se']:.2f} nats"
        parts.append(f"{parzen} (sigma {scores['parzen_sigma']:.3f})")
    if "mnist_fid" in scores:
        parts.append(f"MNIST FID {scores['mnist_fid']:.2f}")
    if "label_accuracy" in scores:
        parts.append(f"label accuracy {100 * scores['label_accuracy']:.1f} %")
    return ", ".join(parts)
