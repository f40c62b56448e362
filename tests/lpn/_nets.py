"""Random LPNs for the tests: double precision, constrained weights spread away from their tiny initial values."""
import torch

from sciml.nn.icnn import LPN


def random_lpn(seed: int = 0, **config) -> LPN:
    """``LPN(**config)`` in float64 with its constrained weights drawn from U(0, 0.3), so that they matter."""
    torch.manual_seed(seed)
    net = LPN(**config).double()
    with torch.no_grad():
        for w in net.potential.constrained_parameters():
            w.uniform_(0.0, 0.3)
    return net
