"""A small TVAE (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN") in torch.

Simplified from the paper's mode-specific normalisation: numeric columns become
normal scores through their empirical CDF (a quantile transform, inverted exactly
on sampling), categoricals one-hot. Encoder and decoder are two-layer MLPs; the
decoder has a learned noise scale per numeric column, as in TVAE. CPU, seeded by a
private torch generator (the global RNG state is left as it was).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd


class TVAESynthesizer:
    """``fit(frame)`` then ``sample(n, seed)``, like every shopaug synthesizer.

    >>> import pandas as pd
    >>> real = pd.DataFrame({"x": [1.0, 2.5, 3.0, 4.5] * 25, "c": list("abab") * 25})
    >>> fake = TVAESynthesizer(epochs=2).fit(real).sample(4, seed=0)
    >>> list(fake.columns), len(fake)
    (['x', 'c'], 4)
    """

    def __init__(self, epochs: int = 50, batch_size: int = 256, latent_dim: int = 32,
                 hidden: int = 128, learning_rate: float = 1e-3, seed: int = 0,
                 threads: int | None = None) -> None:
        self.epochs, self.batch_size, self.latent_dim = epochs, batch_size, latent_dim
        self.hidden, self.learning_rate, self.seed = hidden, learning_rate, seed
        self.threads = threads

    def _net(self, torch: Any, width: int, n_numeric: int) -> Any:
        nn = torch.nn
        h, z = self.hidden, self.latent_dim
        net = nn.Module()
        net.encoder = nn.Sequential(nn.Linear(width, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                    nn.Linear(h, 2 * z))
        net.decoder = nn.Sequential(nn.Linear(z, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                    nn.Linear(h, width))
        net.sigma = nn.Parameter(torch.full((n_numeric,), 0.1))
        return net

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        z, codes = self.codec_.transform(frame)
        parts = [z]
        for j, size in enumerate(self.sizes_):
            parts.append(np.eye(size)[codes[:, j]])
        return np.hstack(parts).astype(np.float32)

    def fit(self, frame: pd.DataFrame) -> TVAESynthesizer:
        import torch
        import torch.nn.functional as F

        from shopaug.augment.tabular import ColumnCodec  # the codec every synthesizer shares

        self.codec_ = ColumnCodec().fit(frame)
        self.sizes_ = self.codec_.one_hot_sizes()
        x = torch.from_numpy(self._encode(frame))
        p = len(self.codec_.numeric)
        slices = list(itertools.pairwise(np.cumsum([p, *self.sizes_]).tolist()))
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)  # weight init, inside the fork only
                net = self._net(torch, x.shape[1], p)
                gen = torch.Generator().manual_seed(self.seed)
                opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate,
                                       weight_decay=1e-5)
                codes = [x[:, a:b].argmax(1) for a, b in slices]
                for _ in range(self.epochs):
                    order = torch.randperm(len(x), generator=gen)
                    for start in range(0, len(x), self.batch_size):
                        idx = order[start:start + self.batch_size]
                        batch = x[idx]
                        mu, logvar = net.encoder(batch).chunk(2, dim=1)
                        eps = torch.randn(mu.shape, generator=gen)
                        out = net.decoder(mu + eps * torch.exp(0.5 * logvar))
                        sigma = net.sigma.clamp(0.01, 1.0)
                        rec = (((batch[:, :p] - out[:, :p]) ** 2) / (2 * sigma ** 2)).sum() \
                            + torch.log(sigma).sum() * len(idx)
                        for j, (a, b) in enumerate(slices):
                            rec = rec + F.cross_entropy(out[:, a:b], codes[j][idx],
                                                        reduction="sum")
                        kl = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp())
                        loss = (2 * rec + kl) / len(idx)  # TVAE's loss factor 2
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
        finally:
            torch.set_num_threads(threads)
        self.net_ = net.eval()
        self.slices_ = slices
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        import torch

        p = len(self.codec_.numeric)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            out = self.net_.decoder(torch.randn((n, self.latent_dim), generator=gen))
            sigma = self.net_.sigma.clamp(0.01, 1.0)
            numeric = out[:, :p] + sigma * torch.randn((n, p), generator=gen)
            codes = np.zeros((n, len(self.sizes_)), dtype=np.int64)
            for j, (a, b) in enumerate(self.slices_):
                probs = torch.softmax(out[:, a:b], dim=1)
                codes[:, j] = torch.multinomial(probs, 1, generator=gen)[:, 0].numpy()
        return self.codec_.inverse(numeric.numpy().astype(float), codes)
