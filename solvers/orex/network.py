"""The OReX neural field: learnable-frequency positional encoding and an iterated MLP.

One step of the refinement loop maps ``[PE(x), logit_i, h_i + emb(i)]`` to
``(delta_i, h_{i+1})`` and sets ``logit_{i+1} = logit_i + delta_i``; the initial logit
and hidden state are learned constants and ``emb(i)`` is a sinusoidal embedding of the
iteration index. The logit is that of "outside" (labels: inside 0, outside 1), so the
field is negative inside and the surface is ``logit = 0``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LearnableFourierEncoding", "OReXNet", "iteration_embedding"]


class LearnableFourierEncoding(nn.Module):
    """``x -> [x, sin(f_k x), cos(f_k x)]`` with learnable frequencies ``f_k``.

    Parameters
    ----------
    n_frequencies : int
        ``K``; output width ``3 + 6 K`` (33 for the paper's ``K = 5``).
    base : float
        Initial frequencies ``base * 2^k``, ``k = 0..K-1``.
    """

    def __init__(self, n_frequencies: int = 5, base: float = math.pi / 2):
        super().__init__()
        self.frequencies = nn.Parameter(base * 2.0 ** torch.arange(n_frequencies, dtype=torch.float64))
        self.out_features = 3 + 6 * n_frequencies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : (B, 3) -> (B, 3 + 6K)``."""
        phase = x[:, :, None] * self.frequencies.to(x.dtype)  # (B, 3, K)
        return torch.cat([x, torch.sin(phase).flatten(1), torch.cos(phase).flatten(1)], dim=1)


def iteration_embedding(n_iterations: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Sinusoidal embedding of the iteration index, ``(T, width)``."""
    i = torch.arange(n_iterations, dtype=torch.float64, device=device)[:, None]
    k = torch.arange(width // 2, dtype=torch.float64, device=device)[None, :]
    angle = i / (10000.0 ** (2 * k / width))
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(dtype)


class OReXNet(nn.Module):
    """The iterated in/out network.

    Parameters
    ----------
    n_frequencies : int
        Learnable PE frequencies (paper: 5 -> 33 features).
    hidden_state : int
        Width of the hidden state carried between iterations (paper: 32).
    width, depth : int
        MLP width and number of hidden layers (paper: 64, 7).
    n_iterations : int
        Refinement-loop length (paper: 10; 1 = no refinement loop).
    frequency_base : float
        Initial PE frequencies ``base * 2^k``.
    """

    def __init__(self, n_frequencies: int = 5, hidden_state: int = 32, width: int = 64, depth: int = 7,
                 n_iterations: int = 10, frequency_base: float = math.pi / 2):
        super().__init__()
        self.encoding = LearnableFourierEncoding(n_frequencies, frequency_base)
        self.hidden_state = hidden_state
        self.n_iterations = n_iterations
        layers, features = [], self.encoding.out_features + 1 + hidden_state
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.LeakyReLU()]
            features = width
        layers.append(nn.Linear(features, 1 + hidden_state))
        self.mlp = nn.Sequential(*layers)
        self.initial_logit = nn.Parameter(torch.zeros(1))
        self.initial_hidden = nn.Parameter(torch.zeros(hidden_state))

    def forward(self, x: torch.Tensor, n_iterations: int | None = None) -> torch.Tensor:
        """Logits of every iteration.

        Parameters
        ----------
        x : (B, 3)
            Points in the normalised cube ``[-1, 1]^3``.
        n_iterations : int, optional
            Defaults to ``self.n_iterations``.

        Returns
        -------
        (T, B)
            ``logit_1 .. logit_T`` (the last one is the output).
        """
        steps = self.n_iterations if n_iterations is None else int(n_iterations)
        pe = self.encoding(x)
        batch = x.shape[0]
        logit = self.initial_logit.to(x.dtype).expand(batch, 1)
        hidden = self.initial_hidden.to(x.dtype).expand(batch, self.hidden_state)
        emb = iteration_embedding(steps, self.hidden_state, x.dtype, x.device)
        out = []
        for i in range(steps):
            step = self.mlp(torch.cat([pe, logit, hidden + emb[i]], dim=1))
            logit = logit + step[:, :1]
            hidden = step[:, 1:]
            out.append(logit[:, 0])
        return torch.stack(out)

    def field(self, x: torch.Tensor) -> torch.Tensor:
        """The final logit ``(B,)`` (negative inside)."""
        return self.forward(x)[-1]
