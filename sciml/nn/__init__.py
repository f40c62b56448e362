"""Neural-network building blocks of the core.

* Input-convex networks and learned proximal networks (:mod:`sciml.nn.icnn`): the prox is the
  gradient of a convex potential, exact on whole images of any size; the paper's fixed-size
  network with a fully connected head is :mod:`sciml.nn.icnn_global`, and the weight constraint
  both share is :mod:`sciml.nn.convex_potential`.
* Orthogonal convolutions and exact orthogonality measures (:mod:`sciml.nn.conv_spectrum`,
  :mod:`sciml.nn.orthogonal`, :mod:`sciml.nn.orthogonal_fft`).
"""
from sciml.nn.conv_spectrum import (circular_conv, circular_conv_transpose, conv_operator_matrix,
                                    conv_singular_values, lorth, lorth_alpha, lorth_bound,
                                    orthogonal_conv_exists, orthogonality_error)
from sciml.nn.icnn import LPN, ConvICNN
from sciml.nn.icnn_global import GlobalICNN
from sciml.nn.orthogonal import (OrthoConv1d, OrthoConv2d, OrthoConv3d, OrthoConvTranspose2d,
                                 OrthoConvTranspose3d)
from sciml.nn.orthogonal_fft import CayleyConv2d

__all__ = ["circular_conv", "circular_conv_transpose", "conv_operator_matrix", "conv_singular_values", "lorth",
           "lorth_alpha", "lorth_bound", "orthogonal_conv_exists", "orthogonality_error", "OrthoConv1d",
           "OrthoConv2d", "OrthoConv3d", "OrthoConvTranspose2d", "OrthoConvTranspose3d", "CayleyConv2d",
           "LPN", "ConvICNN", "GlobalICNN"]
