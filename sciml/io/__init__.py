"""File input and output: ParaView export and safe checkpoints.

* :mod:`sciml.io.paraview` -- ``.vti`` volumes, ``.vtp``/``.vtu`` meshes and point
  clouds with scalar and vector fields, ``.pvd`` time series.
* :mod:`sciml.io.checkpoint` -- safetensors weights plus a JSON config, written
  atomically and loaded without pickle.
* :mod:`sciml.io.atomic` -- the temp-file-and-rename helper both rely on.
"""
from sciml.io.atomic import atomic_path
from sciml.io.checkpoint import (CheckpointError, flatten_state, load_checkpoint, load_state, load_torch_file,
                                 save_checkpoint, save_state, unflatten_state)
from sciml.io.paraview import read_vtk, write_pvd, write_vti, write_vtp, write_vtu

__all__ = ["atomic_path", "read_vtk", "write_pvd", "write_vti", "write_vtp", "write_vtu", "CheckpointError",
           "flatten_state", "load_checkpoint", "load_state", "load_torch_file", "save_checkpoint", "save_state",
           "unflatten_state"]
