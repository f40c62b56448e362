"""Where shipped weights live, and how a name becomes a file.

Pretrained weights are ``data/NAME.safetensors`` (config in the safetensors metadata)
plus ``data/NAME.json`` (the training recipe), in the source tree next to the packages.
Set ``SCIML_DATA`` to use another folder (e.g. for a non-editable install).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"


def data_dir() -> Path:
    """The folder of shipped weights: ``$SCIML_DATA`` or the source tree's ``data/``."""
    return Path(os.environ.get("SCIML_DATA", PACKAGE_DATA))


def weights_path(name_or_path: str | os.PathLike, trainer: str) -> Path:
    """Resolve a shipped-model name (``"dcdm-unet"``) or a path to an existing ``.safetensors`` file.

    Parameters
    ----------
    name_or_path : str or PathLike
        A name without suffix is looked up in :func:`data_dir`.
    trainer : str
        The command that produces such weights, named in the error message.

    Raises
    ------
    FileNotFoundError
        Naming the shipped models with the same prefix and the command that trains one.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir() / f"{path.name}.safetensors"
    if not path.exists():
        prefix = Path(name_or_path).name.split("-")[0]
        shipped = sorted(p.stem for p in data_dir().glob(f"{prefix}*.safetensors"))
        raise FileNotFoundError(f"no weights at {path}; shipped models: {shipped or 'none'} in {data_dir()}; "
                                f"train one with '{trainer}' (or set SCIML_DATA)")
    return path
