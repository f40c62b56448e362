"""Loading, saving and applying a trained LPN."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from sciml.io import atomic_path, load_checkpoint, save_checkpoint
from sciml.nn.icnn import LPN
from sciml.pretrained import weights_path

__all__ = ["DEFAULT_MODEL", "load_lpn", "save_lpn", "denoise"]

DEFAULT_MODEL = "lpn-gray-photos"  # the best shipped image denoiser (sigma 0.1), see data/README.md


def load_lpn(name_or_path: str | Path = DEFAULT_MODEL, device=None, dtype: torch.dtype = torch.float32,
             dihedral: bool = False) -> LPN:
    """A shipped LPN (``"lpn-gray-photos"``, the default; ``"lpn-gray"``, ``"lpn-gray-h48"``, ``"lpn-ct"``,
    ``"lpn-laplace-pm"``, ...: see ``data/README.md``) or a checkpoint path.

    The recipe stored with the weights is available as ``model.recipe``. The model is returned
    in eval mode with ``dtype`` on ``device``; ``dihedral`` averages its potential over the image
    symmetries (see :class:`~sciml.nn.icnn.LPN`; images only).
    """
    tensors, config = load_checkpoint(weights_path(name_or_path, "sciml train lpn"))
    model = LPN(dihedral=dihedral, **config["network"])
    model.load_state_dict(tensors)
    model.recipe = config
    return model.to(device=device, dtype=dtype).eval()


def save_lpn(model: LPN, path: str | Path, **recipe) -> Path:
    """Write ``model`` (float32 weights + network config + ``recipe``) and a JSON copy of the recipe."""
    config = {"network": model.config, **recipe}
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    path = save_checkpoint(path, state, config)
    with atomic_path(Path(path).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")
    return path


def denoise(model: LPN, image: torch.Tensor) -> torch.Tensor:
    """Apply the prox to one image or a batch.

    Parameters
    ----------
    image : (H, W), (C, H, W) or (B, C, H, W) tensor
        Converted to the model's dtype and device for the network, returned in its own.

    Returns
    -------
    tensor of the same shape, dtype and device as ``image``
    """
    p = next(model.parameters())
    x = image
    while x.ndim < 4:
        x = x.unsqueeze(0)
    out = model(x.to(device=p.device, dtype=p.dtype), create_graph=False)
    return out.reshape(image.shape).to(device=image.device, dtype=image.dtype)
