"""Safe checkpoints: safetensors weights plus a JSON config, never pickle.

A checkpoint is one ``.safetensors`` file. Its tensors are stored as raw bytes and
its header metadata carries

* ``"sciml_format"`` -- the format marker (:data:`FORMAT`), so foreign files are
  recognised and rejected with a clear message;
* ``"sciml_config"`` -- the user's JSON config (training recipe, data seed, ...);
* ``"sciml_state"`` -- only for :func:`save_state`: the JSON skeleton of a nested
  state (model + optimizer + scheduler + step), see :func:`flatten_state`.

Files are written with :func:`sciml.io.atomic.atomic_path`, so a kill during a save
leaves the previous checkpoint intact. Foreign ``torch.save`` files are read with
:func:`load_torch_file`, which always passes ``weights_only=True``.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sciml.io.atomic import atomic_path

__all__ = ["CheckpointError", "FORMAT", "save_checkpoint", "load_checkpoint", "save_state",
           "load_state", "load_torch_file", "flatten_state", "unflatten_state"]

FORMAT = "sciml-checkpoint/1"
_FORMAT_KEY, _CONFIG_KEY, _STATE_KEY, _ORDER_KEY = "sciml_format", "sciml_config", "sciml_state", "sciml_order"
_MAX_HEADER = 100_000_000  # the limit safetensors itself enforces
_WRITER = "sciml.io.save_checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, foreign or corrupt (the message says which)."""


# --------------------------------------------------------------------------- writing
def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detach, move to CPU, make contiguous; clone tensors that share storage (tied weights)."""
    out, seen = {}, set()
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"checkpoint entry {name!r} is a {type(tensor).__name__}, not a tensor; "
                            "put non-tensor values in `config` or use save_state")
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _write(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    header = {_FORMAT_KEY: FORMAT}
    header.update({key: json.dumps(value) for key, value in metadata.items()})
    path = Path(path)
    cpu = _cpu_tensors(tensors)
    with atomic_path(path) as tmp:
        save_file(cpu, tmp, metadata=header)
    return path


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                    config: dict | None = None) -> Path:
    """Write ``tensors`` and a JSON ``config`` to one safetensors file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination, conventionally ending in ``.safetensors``. Parent folders are created.
    tensors : dict[str, Tensor]
        Named tensors of any shape, dtype and device (e.g. ``model.state_dict()``);
        they are stored detached, on CPU and contiguous.
    config : dict, optional
        JSON-serialisable settings stored in the file's metadata.

    Returns
    -------
    Path
        ``path``.
    """
    return _write(path, tensors, {_CONFIG_KEY: config if config is not None else {}, _ORDER_KEY: list(tensors)})


def save_state(path: str | os.PathLike, state: Any, config: dict | None = None) -> Path:
    """Write a nested state (dicts/lists of tensors and scalars) atomically; see :func:`flatten_state`."""
    tensors, meta = flatten_state(state)
    return _write(path, tensors, {_CONFIG_KEY: config if config is not None else {}, _STATE_KEY: meta})


# --------------------------------------------------------------------------- reading
def _fail(path: Path, problem: str, fix: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {problem}; {fix}")


def _not_safetensors(path: Path, head: bytes, size: int) -> CheckpointError:
    """The error for a file whose first bytes are not a safetensors header."""
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return _fail(path, "is a torch.save (pickle/zip) file, not a safetensors checkpoint",
                     f"read it with sciml.io.load_torch_file and resave it with {_WRITER}")
    if size < 9:
        return _fail(path, f"is empty or truncated ({size} bytes)", "re-copy the file or resave it")
    return _fail(path, "is not a safetensors file (it does not start with a safetensors header)",
                 f"expected a file written by {_WRITER}")


def _truncated(path: Path, size: int, need: int) -> CheckpointError:
    return _fail(path, f"is truncated ({size} bytes, its header promises {need})",
                 "re-copy the file or resave it from the training run (an interrupted copy or "
                 "download cuts files short)")


def _read_header(path: Path) -> dict:
    """Parse and validate the safetensors header without loading tensor data."""
    if not path.is_file():
        raise _fail(path, "file does not exist" if not path.exists() else "is not a file",
                    f"check the path (working directory: {Path.cwd()}) or train the model first")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
        length = struct.unpack("<Q", head[:8])[0] if len(head) == 9 else 0
        if head[8:9] != b"{" or not 2 <= length <= _MAX_HEADER:
            raise _not_safetensors(path, head, size)
        if 8 + length > size:
            raise _truncated(path, size, 8 + length)
        raw = head[8:] + handle.read(length - 1)
    try:
        header = json.loads(raw)
        need = 8 + length + max((e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"),
                                default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise _fail(path, f"has an unreadable safetensors header ({err})",
                    f"the file is corrupt or was not written by {_WRITER}; resave it") from None
    if size < need:
        raise _truncated(path, size, need)
    return header


def _read(path: str | os.PathLike, device: str | torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """Validate ``path`` and return its tensors and decoded sciml metadata."""
    path = Path(path)
    metadata = _read_header(path).get("__metadata__") or {}
    fmt = metadata.get(_FORMAT_KEY)
    if fmt is None:
        raise _fail(path, f"is a safetensors file but not a sciml checkpoint (no {_FORMAT_KEY!r} metadata)",
                    f"load its raw tensors with safetensors.torch.load_file, or resave it with {_WRITER}")
    if fmt != FORMAT:
        raise _fail(path, f"has format {fmt!r}, this sciml reads {FORMAT!r}",
                    "upgrade sciml or resave the checkpoint with this version")
    try:
        decoded = {key: json.loads(value) for key, value in metadata.items() if key != _FORMAT_KEY}
        tensors = load_file(path, device=str(device))
    except (ValueError, SafetensorError) as err:
        raise _fail(path, f"is corrupt ({err})", "resave it from the training run") from None
    return tensors, decoded


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle involved).

    Parameters
    ----------
    path : str or PathLike
        A ``.safetensors`` file carrying the sciml format marker.
    device : str or torch.device
        Where the tensors are placed.

    Returns
    -------
    tensors : dict[str, Tensor]
        The stored tensors, bitwise equal to those saved, in the saved order.
    config : dict
        The JSON config given at save time (``{}`` if none).

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, not safetensors, a ``torch.save`` pickle,
        a safetensors file written by another tool, or corrupt.
    """
    tensors, meta = _read(path, device)
    order = meta.get(_ORDER_KEY, [])  # safetensors sorts its entries; restore the saved order
    if sorted(order) == sorted(tensors):
        tensors = {name: tensors[name] for name in order}
    return tensors, meta.get(_CONFIG_KEY, {})


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Any, dict]:
    """Read a nested state written by :func:`save_state`; returns ``(state, config)``."""
    tensors, meta = _read(path, device)
    if _STATE_KEY not in meta:
        raise _fail(Path(path), "holds plain tensors, not a nested training state",
                    "read it with sciml.io.load_checkpoint")
    return unflatten_state(tensors, meta[_STATE_KEY]), meta.get(_CONFIG_KEY, {})


def load_torch_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Read a foreign ``torch.save`` file with ``weights_only=True`` (tensors and plain containers only).

    Raises
    ------
    CheckpointError
        If the file is missing, corrupt, or needs arbitrary Python objects (which
        would require unsafe unpickling).
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file does not exist", f"check the path (working directory: {Path.cwd()})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _fail(path, f"needs Python objects beyond tensors and containers ({first})",
                    "resave only the state_dict, or, if you trust the file, allow its classes with "
                    "torch.serialization.add_safe_globals") from None
    except (RuntimeError, EOFError, ValueError) as err:
        hint = "use sciml.io.load_checkpoint" if path.suffix == ".safetensors" else "re-copy or resave it"
        raise _fail(path, f"is not a readable torch file ({err})", hint) from None


# --------------------------------------------------------------------- nested state
_SCALARS = (bool, int, float, str, type(None))


def flatten_state(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into named tensors and a JSON-serialisable skeleton.

    Dicts (with str/int/float/bool/None keys, e.g. the int parameter ids of
    ``optimizer.state_dict()``), lists and tuples are kept as tagged JSON containers;
    tensors are replaced by their name, e.g. ``"optimizer/state/0/exp_avg"``.

    Parameters
    ----------
    state : nested dict / list / tuple of Tensor, int, float, str, bool, None

    Returns
    -------
    tensors : dict[str, Tensor]
    meta : JSON-serialisable skeleton, the input of :func:`unflatten_state`.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            name, n = where or "tensor", 1
            while name in tensors:
                name, n = f"{where}~{n}", n + 1
            tensors[name] = value
            return {"tensor": name}
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, _SCALARS):
                    raise TypeError(f"state key {key!r} at {where or '<root>'!r} is a {type(key).__name__}; "
                                    "keys must be str, int, float, bool or None")
            return {"dict": [[k, encode(v, f"{where}/{k}".lstrip("/"))] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            tag = "list" if isinstance(value, list) else "tuple"
            return {tag: [encode(v, f"{where}/{i}".lstrip("/")) for i, v in enumerate(value)]}
        if isinstance(value, _SCALARS):
            return value
        raise TypeError(f"state entry {where or '<root>'!r} is a {type(value).__name__}; only tensors, "
                        "dicts, lists, tuples, int, float, str, bool and None can be checkpointed")

    return tensors, encode(state, "")


def unflatten_state(tensors: dict[str, torch.Tensor], meta: Any) -> Any:
    """Rebuild the nested state of :func:`flatten_state` from its tensors and skeleton."""
    if isinstance(meta, dict):
        (tag, body), = meta.items()
        if tag == "tensor":
            if body not in tensors:
                raise CheckpointError(f"checkpoint state refers to tensor {body!r}, which is missing; "
                                      "the file is corrupt, resave it from the training run")
            return tensors[body]
        if tag == "dict":
            return {key: unflatten_state(tensors, value) for key, value in body}
        items = [unflatten_state(tensors, value) for value in body]
        return tuple(items) if tag == "tuple" else items
    return meta
