"""The self-test a new native kernel passes before the app trusts it (run in a child process
by :func:`core.kernels._build`, so that a library that crashes takes only the child down).

    python -m core.kernels.selftest D LIBRARY

Renders small LMF models of render width ``D`` (with and without the local ensemble, zooming
in and out) through the library and through eager PyTorch; exits 0 when every pixel agrees
within 1e-4, 1 (with a line on stderr) otherwise.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    d, path = int(args[0]), Path(args[1])
    from core import kernels
    from core.geometry import Region
    from core.models.registry import make
    from core.render.encoding import encode
    from core.render.renderer import render

    torch.set_num_threads(1)
    kernel = kernels.open_library(path, d)
    rng = np.random.default_rng(0)
    img = rng.random((13, 17, 3), dtype=np.float32)
    for ens, layers in ((True, 3), (False, 1)):
        torch.manual_seed(1)
        model = make({"name": "lmf", "args": {
            "encoder_spec": {"name": "edsr-baseline",
                             "args": {"n_resblocks": 1, "n_feats": 8, "no_upsampling": True}},
            "hyper_hidden": [16], "render_width": d, "render_layers": layers,
            "local_ensemble": ens, "skip": True}}).eval()
        with torch.no_grad():
            for p in model.hyper[-1].parameters():
                p.normal_(0, 0.3)
        latent = encode(model, img, torch.device("cpu"), tile=8)
        for region, ow, oh in ((Region(-0.5, 1.2, 9.7, 6.1), 41, 29), (Region.full(17, 13), 9, 7)):
            kernels._loaded[d] = kernel
            native = render(latent, region, ow, oh)
            kernels._loaded[d] = None
            eager = render(latent, region, ow, oh)
            err = float(np.abs(native - eager).max())
            if not err < 1e-4:
                print(f"native and eager renders differ by {err:g}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
