"""Fully convolutional input-convex networks (ICNN) and the learned proximal network (LPN).

Fang, Buchanan & Sulam (ICLR 2024): if ``psi`` is convex, ``f = grad psi`` is the proximal
operator of some (possibly non-convex) function ``R``. :class:`ConvICNN` computes a convex
scalar potential ``psi(x)`` of a whole image, and :class:`LPN` returns its gradient.

Convexity of ``psi`` in ``x`` holds because

* the first layer ``z_1 = act(W_0 x + b_0)`` is an affine map followed by a convex,
  non-decreasing activation (softplus);
* every later layer ``z_{k+1} = act(V_k z_k + W_k x + b_k)`` adds a *non-negative* combination
  of convex ``z_k`` (``V_k >= 0``, no bias) to an affine function of ``x`` (the skip);
* padding (zeros, reflect, circular, replicate) only copies or zeros entries, so it keeps a
  convolution with non-negative weights a non-negative combination;
* ``psi(x) = sum_pixels (u^T z_L) + alpha ||x||^2`` with ``u >= 0``: a sum over pixels of
  convex functions plus the strong-convexity term.

Unlike the reference network (fixed 128 x 128 input, mean-pooled to a scalar, applied to large
images by averaging overlapping patches, which destroys the gradient structure), the potential
here is a sum over pixels of a convolutional feature: the network accepts any image size and
``f = grad psi`` is an exact gradient field, hence an exact prox, on the whole image.

The constrained weights (``V_k`` and ``u``) must be projected after every optimiser step with
:meth:`ConvICNN.clamp_weights` (the paper's ``wclip``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from sciml.nn.convex_potential import ConvexPotential
from sciml.nn.icnn_global import GlobalICNN

__all__ = ["ConvICNN", "LPN"]


class ConvICNN(ConvexPotential):
    """Convex potential ``psi : (B, C, H, W) -> (B,)`` built from convolutions.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    hidden : int
        Feature channels of every hidden layer.
    layers : int
        Number of hidden layers ``L >= 1`` (the first one is unconstrained).
    kernel_size : int
        Odd kernel size of every convolution; ``1`` gives a per-pixel (separable) potential,
        which is the scalar network of the paper's 1-D experiment.
    beta : float
        Softplus sharpness (``softplus(t) = log(1 + exp(beta t)) / beta``); the paper uses 100
        for images and 10 for the 1-D network.
    alpha : float
        Strong-convexity weight: ``psi`` gets ``+ alpha ||x||^2`` (the paper's convention, so the
        Jacobian of the prox is ``>= 2 alpha I``).
    dilations : sequence of int, optional
        Dilation of the ``V_k`` convolutions of layers ``2..L`` (enlarges the receptive field
        at no cost); default all 1.
    padding_mode : str
        ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    init_log_mean, init_log_std : float
        The constrained weights start at ``exp(N(init_log_mean, init_log_std))`` (the paper's
        ``init_weights(-10, 0.1)``).
    """

    def __init__(self, in_channels: int = 1, hidden: int = 32, layers: int = 4, kernel_size: int = 3,
                 beta: float = 100.0, alpha: float = 1e-6, dilations: Sequence[int] | None = None,
                 padding_mode: str = "zeros", init_log_mean: float = -10.0, init_log_std: float = 0.1):
        super().__init__()
        if layers < 1 or hidden < 1 or in_channels < 1:
            raise ValueError(f"ConvICNN needs layers, hidden and in_channels >= 1, got {layers}, {hidden}, "
                             f"{in_channels}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size={kernel_size} must be odd so that the output keeps the input size")
        if alpha < 0 or beta <= 0:
            raise ValueError(f"need alpha >= 0 and beta > 0 for a convex potential, got alpha={alpha}, beta={beta}")
        dilations = list(dilations) if dilations is not None else [1] * (layers - 1)
        if len(dilations) != layers - 1:
            raise ValueError(f"dilations has {len(dilations)} entries; give one per constrained layer "
                             f"({layers - 1} = layers - 1)")
        self.config: dict[str, Any] = dict(in_channels=in_channels, hidden=hidden, layers=layers,
                                           kernel_size=kernel_size, beta=beta, alpha=alpha, dilations=dilations,
                                           padding_mode=padding_mode, init_log_mean=init_log_mean,
                                           init_log_std=init_log_std)
        self.beta, self.alpha = float(beta), float(alpha)
        pad = kernel_size // 2

        def conv(cin: int, cout: int, bias: bool, dilation: int = 1) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size, padding=pad * dilation, dilation=dilation, bias=bias,
                             padding_mode=padding_mode)
        # skip (x-path) convolutions: unconstrained, with bias; x_path[0] is the first layer
        self.x_path = nn.ModuleList([conv(in_channels, hidden, True) for _ in range(layers)])
        # z-path convolutions: non-negative weights, no bias
        self.z_path = nn.ModuleList([conv(hidden, hidden, False, d) for d in dilations])
        # output: non-negative 1x1 combination of the last features, summed over pixels
        self.out = nn.Conv2d(hidden, 1, 1, bias=False)
        self.reset_constrained(init_log_mean, init_log_std)

    # -- the constraint ------------------------------------------------------------------
    def constrained_parameters(self) -> list[nn.Parameter]:
        """The weights that must stay non-negative (``V_k`` and the output ``u``)."""
        return [m.weight for m in self.z_path] + [self.out.weight]

    @property
    def receptive_field(self) -> int:
        """Side of the square of input pixels that one pixel of ``grad psi`` depends on."""
        k = self.config["kernel_size"]
        radius = (k // 2) * (1 + sum(self.config["dilations"]))
        return 2 * (2 * radius) + 1 if k > 1 else 1  # the gradient reaches twice as far as psi's features

    # -- evaluation -------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden features ``z_L``, shape ``(B, hidden, H, W)``, each convex in ``x``."""
        z = self.act(self.x_path[0](x))
        for skip, layer in zip(self.x_path[1:], self.z_path):
            z = self.act(layer(z) + skip(x))
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The potential ``psi(x)``.

        Parameters
        ----------
        x : (B, C, H, W) tensor
            Any ``H, W``; dtype and device of the network.

        Returns
        -------
        (B,) tensor
        """
        if x.ndim != 4:
            raise ValueError(f"ConvICNN expects images of shape (B, C, H, W), got {tuple(x.shape)}; "
                             "add batch/channel axes with x[None, None]")
        z = self.out(self.features(x))
        return z.flatten(1).sum(1) + self.alpha * x.flatten(1).pow(2).sum(1)


def _dihedral_transform(x: torch.Tensor, quarter_turns: int, transpose: bool) -> torch.Tensor:
    """``x`` ``(B, C, H, W)``, optionally transposed, then rotated by ``quarter_turns * 90`` degrees."""
    return torch.rot90(x.transpose(-1, -2) if transpose else x, quarter_turns, (-2, -1))


class LPN(nn.Module):
    """Learned proximal network: ``f(x) = grad psi(x)`` for a convex :class:`ConvICNN` ``psi``.

    ``f`` is the proximal operator of a function ``R`` (see :func:`solvers.lpn.prior.regulariser`
    for evaluating it), exactly, on images of any size.

    Parameters
    ----------
    architecture : {"conv", "global"}
        ``"conv"`` (default): the fully convolutional :class:`ConvICNN`, any image size.
        ``"global"``: the paper's MNIST network, :class:`~sciml.nn.icnn_global.GlobalICNN`
        (strided convolutions and a fully connected head), for images of one fixed size.
    dihedral : bool
        Average ``psi`` over the 8 flips, rotations and transposes of the image (off by default;
        also settable afterwards as ``model.dihedral``). The average of convex functions of
        ``g x`` for the permutations ``g`` is convex, so ``f`` stays an exact prox, now
        equivariant to those symmetries, at 8 times the cost. Not in the paper; the weights do not
        change.
    **kwargs
        Passed to the potential: :class:`ConvICNN` (``in_channels``, ``hidden``, ``layers``,
        ``kernel_size``, ``beta``, ``alpha``, ``dilations``, ``padding_mode``) or
        :class:`~sciml.nn.icnn_global.GlobalICNN` (``in_channels``, ``size``, ``hidden``, ``head``,
        ``beta``, ``alpha``).

    Examples
    --------
    >>> net = LPN(hidden=8, layers=3).double()
    >>> x = torch.rand(2, 1, 20, 17, dtype=torch.float64)
    >>> net(x).shape
    torch.Size([2, 1, 20, 17])
    """

    def __init__(self, architecture: str = "conv", dihedral: bool = False, **kwargs: Any):
        super().__init__()
        if architecture == "conv":
            self.potential = ConvICNN(**kwargs)
        elif architecture == "global":
            self.potential = GlobalICNN(**kwargs)
        else:
            raise ValueError(f"unknown LPN architecture {architecture!r}; use 'conv' (any image size) or "
                             "'global' (the paper's fixed-size MNIST network)")
        self.architecture = architecture
        self.config = {"architecture": architecture, **self.potential.config}  # weights saved before: "conv"
        self.dihedral = dihedral

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """The convex potential, ``x : (B, C, H, W) -> (B,)`` (averaged over the dihedral group
        when ``self.dihedral``)."""
        if not self.dihedral:
            return self.potential(x)
        return torch.stack([self.potential(_dihedral_transform(x, k, transpose))
                            for transpose in (False, True) for k in range(4)]).mean(0)

    def clamp_weights(self) -> None:
        """Project the constrained weights onto ``>= 0`` (call after every optimiser step)."""
        self.potential.clamp_weights()

    def forward(self, x: torch.Tensor, create_graph: bool | None = None) -> torch.Tensor:
        """The prox ``f(x) = grad psi(x)``.

        Parameters
        ----------
        x : (B, C, H, W) tensor
        create_graph : bool, optional
            Keep the graph of the gradient (needed to train, or to differentiate ``f``);
            default: when training or when ``x`` requires grad.

        Returns
        -------
        (B, C, H, W) tensor
            Detached unless ``create_graph``.
        """
        if create_graph is None:
            create_graph = self.training or x.requires_grad
        with torch.enable_grad():
            xi = x if x.requires_grad else x.detach().requires_grad_(True)
            psi = self.psi(xi).sum()
            (grad,) = torch.autograd.grad(psi, xi, create_graph=create_graph)
        return grad if create_graph else grad.detach()

    @property
    def receptive_field(self) -> int:
        """Side of the square of input pixels that one output pixel depends on."""
        return self.potential.receptive_field

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self.config.items() if not k.startswith("init_")}
        params = sum(p.numel() for p in self.parameters())
        return (", ".join(f"{k}={v}" for k, v in shown.items()) + f", parameters={params}, "
                f"receptive_field={self.receptive_field}, dihedral={self.dihedral}")
