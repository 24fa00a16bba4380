"""The C++ loop in greedy mode equals the torch reference loop (model.generate.maskgit_loop) on the same logits."""

import numpy as np
import pytest

from showo_sdk.sampling import maskgit_generate

torch = pytest.importorskip("torch")
from showo_sdk.model.generate import maskgit_loop  # noqa: E402


def _table(b, n, k, seed):
    return np.random.default_rng(seed).normal(0, 3, (b, n, k)).astype(np.float32)


@pytest.mark.parametrize("b,n,k,steps,guidance,seed", [
    (1, 16, 32, 4, 0.0, 0), (2, 64, 50, 8, 1.75, 1), (3, 36, 17, 16, 5.0, 2), (2, 256, 64, 18, 0.0, 3)])
def test_greedy_cpp_equals_torch_reference(b, n, k, steps, guidance, seed):
    cond, uncond = _table(b, n, k, seed), _table(b, n, k, seed + 100)

    def logits_np(canvas):  # depends on the canvas, so the loop's feedback matters
        bump = (canvas[..., None] == np.arange(k)).astype(np.float32)
        c, u = cond + bump, uncond - bump
        return np.ascontiguousarray(np.concatenate([c, u]) if guidance > 0 else c)

    def logits_torch(canvas):
        both = torch.from_numpy(logits_np(canvas.numpy()))
        if guidance == 0:
            return both
        c, u = both.chunk(2)
        return (1 + guidance) * c - guidance * u

    canvas = np.full((b, n), k, np.int64)
    canvas[:, ::5] = np.arange(n)[::5] % k  # partly known, as inpainting
    ours = maskgit_generate(logits_np, canvas, steps, num_codes=k, guidance_scale=guidance, greedy=True)
    ref = maskgit_loop(logits_torch, torch.from_numpy(canvas), k, steps, greedy=True).numpy()
    np.testing.assert_array_equal(ours, ref)
