"""Attention blocks for the UMat generator bottleneck.

* :class:`EfficientAttention` -- "Efficient Attention: Attention with Linear Complexities"
  (Shen, Zhang, Zhao, Yi, Li, WACV 2021). Queries are normalised with a softmax along the
  channel (key) dimension of each position, keys with a softmax along the positions of each
  channel; the global context ``K^T V`` is a ``(d_k, d_v)`` matrix per head, so the cost is
  ``O(N d_k d_v)`` in time and ``O(d_k d_v)`` extra memory instead of ``O(N^2)``.
* :class:`SoftmaxAttention` -- standard scaled dot-product (non-local) attention, ``O(N^2)``,
  kept for comparison.

Both are residual: ``x + proj(attention(x))``, with ``proj`` initialised to zero so a freshly
built block is the identity. Both are *global over the spatial extent they are given*: under
tiled inference (:func:`solvers.umat.tiling.tiled_apply`) every tile attends only to itself.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def efficient_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Efficient (linear) attention of Shen et al. (2021) on flattened features.

    Parameters
    ----------
    q, k : (B, heads, d_k, N)
        Queries and keys (N = number of positions).
    v : (B, heads, d_v, N)
        Values.

    Returns
    -------
    Tensor, (B, heads, d_v, N)
        ``V softmax_N(K)^T softmax_dk(Q)``, i.e. for each position the mixture of the ``d_k``
        global context vectors weighted by the query's channel softmax.
    """
    q = torch.softmax(q, dim=2)          # over channels, per position
    k = torch.softmax(k, dim=3)          # over positions, per channel
    context = torch.einsum("bhkn,bhvn->bhkv", k, v)       # (B, h, d_k, d_v)
    return torch.einsum("bhkv,bhkn->bhvn", context, q)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Scaled dot-product attention over positions, ``O(N^2)`` memory and time.

    Parameters
    ----------
    q, k : (B, heads, d_k, N)
    v : (B, heads, d_v, N)

    Returns
    -------
    Tensor, (B, heads, d_v, N)
    """
    scores = torch.einsum("bhkn,bhkm->bhnm", q, k) / math.sqrt(q.shape[2])
    weights = torch.softmax(scores, dim=-1)
    return torch.einsum("bhnm,bhvm->bhvn", weights, v)


class _Attention2d(nn.Module):
    """Shared plumbing: 1x1 projections, head split, zero-initialised output projection."""

    kernel = staticmethod(efficient_attention)

    def __init__(self, channels: int, heads: int = 4, key_channels: int | None = None):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels={channels} must be divisible by heads={heads}; pick heads dividing it")
        key_channels = channels if key_channels is None else key_channels
        if key_channels % heads:
            raise ValueError(f"key_channels={key_channels} must be divisible by heads={heads}")
        self.heads = heads
        self.key_channels = key_channels
        self.norm = nn.GroupNorm(min(8, channels), channels)
        self.qkv = nn.Conv2d(channels, 2 * key_channels + channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x : (B, C, H, W)`` -> ``(B, C, H, W)`` (residual)."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).split([self.key_channels, self.key_channels, c], dim=1)
        n = h * w
        q = q.reshape(b, self.heads, -1, n)
        k = k.reshape(b, self.heads, -1, n)
        v = v.reshape(b, self.heads, -1, n)
        out = self.kernel(q, k, v).reshape(b, c, h, w)
        return x + self.proj(out)


class EfficientAttention(_Attention2d):
    """Residual efficient-attention block (Shen et al. 2021), ``O(N C^2)``.

    Parameters
    ----------
    channels : int
        Feature channels ``C``.
    heads : int
        Number of heads (must divide ``channels`` and ``key_channels``).
    key_channels : int, optional
        Total key/query channels ``d_k * heads``; defaults to ``channels``.
    """

    kernel = staticmethod(efficient_attention)


class SoftmaxAttention(_Attention2d):
    """Residual scaled dot-product (non-local) attention block, ``O(N^2 C)``; for comparison."""

    kernel = staticmethod(softmax_attention)


def make_attention(kind: str, channels: int, heads: int = 4) -> nn.Module:
    """Build the bottleneck attention named ``kind`` ("linear", "softmax" or "none")."""
    if kind == "linear":
        return EfficientAttention(channels, heads)
    if kind == "softmax":
        return SoftmaxAttention(channels, heads)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown attention {kind!r}; use 'linear' (Shen et al.), 'softmax' or 'none'")
