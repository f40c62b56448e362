import numpy as np
import torch

from sciml.train import TrainConfig
from solvers.dgno.baselines import relative_l2, train_data_driven
from solvers.dgno.darcy import generate_darcy


def test_data_driven_baselines_train_and_match_size():
    data = generate_darcy(12, seed=0, n_pix=9, refine=1)
    tc = TrainConfig(steps=40, batch_size=4, lr=3e-3, device="cpu", seed=0)
    sizes, errs = {}, {}
    for kind in ("deeponet", "multionet"):
        torch.manual_seed(0)
        model, res = train_data_driven(kind, data.a, data.u, tc, width=16, depth=3)
        sizes[kind] = sum(p.numel() for p in model.parameters())
        assert np.mean(res.losses[-5:]) < 0.5 * np.mean(res.losses[:5])
        with torch.no_grad():
            pred = model(torch.tensor(data.a, dtype=torch.float32)).numpy()
        errs[kind] = relative_l2(pred, data.u).mean()
        assert pred.shape == data.u.shape
    assert sizes["multionet"] - sizes["deeponet"] == 3          # only the layer weights differ
    assert all(e < 1.0 for e in errs.values())


def test_relative_l2():
    t = np.ones((2, 3, 3))
    np.testing.assert_allclose(relative_l2(1.1 * t, t), [0.1, 0.1])
