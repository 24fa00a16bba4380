"""``python -m showo_sdk.train``: train a recipe, evaluate a checkpoint or bundle, or ship a checkpoint.

  python -m showo_sdk.train train --recipe shapes --out runs/shapes
  python -m showo_sdk.train eval runs/shapes/showo/stage3 [--bundle engine.plan] --out eval/
  python -m showo_sdk.train ship runs/shapes/showo/stage3 showo_sdk/assets/shapes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train(args) -> None:
    from .shapes import RECIPES, train_recipe

    ckpt = train_recipe(RECIPES[args.recipe], args.out, progress=not args.quiet, device=args.device)
    print(f"final checkpoint: {ckpt}")


def _eval(args) -> None:
    from .data import make_split
    from .eval_adapters import reference_fns, runtime_fns
    from .evaluation import mini_geneval, save_grid, vqa_accuracy, write_report
    from .vq_eval import evaluate_vq

    kw = dict(steps=args.steps, guidance_scale=args.guidance, seed=args.seed)
    if args.bundle:
        generate, answer = runtime_fns(args.bundle, **kw)
    else:
        generate, answer = reference_fns(args.checkpoint, **kw, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geneval = mini_geneval(generate, seed=args.seed, n_per_category=args.n_per_category)
    heldout = make_split(args.seed, args.n_vqa, "heldout", args.image_size)
    vqa = vqa_accuracy(answer, heldout)
    from ..model.magvit_io import load_magvit

    psnr = evaluate_vq(load_magvit(Path(args.checkpoint) / "vq"), [r["image"] for r in heldout])
    results = {"geneval": geneval, "vqa": vqa, "vq": psnr, "path": "runtime" if args.bundle else "torch",
               "settings": {**kw, "n_per_category": args.n_per_category, "n_vqa_images": args.n_vqa}}
    save_grid(geneval["samples"][:: max(1, len(geneval["samples"]) // 36)], out / "geneval_grid.png")
    write_report(results, out / "eval.json")
    failures = {k: {m: n for m, n in modes.items() if n} for k, modes in geneval["failures"].items()}
    print(json.dumps({"geneval_overall": geneval["overall"], **geneval["per_category"],
                      "geneval_failures": {k: v for k, v in failures.items() if v},
                      "vqa_accuracy": vqa["accuracy"],
                      **{f"vqa_{k}": v["accuracy"] for k, v in vqa["per_kind"].items()},
                      "vq_psnr_db": psnr["psnr_db"]}, indent=2))


def _ship(args) -> None:
    from .ship import ship_checkpoint

    ship_checkpoint(args.checkpoint, args.dest, dtype=args.dtype)
    print(f"shipped to {args.dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m showo_sdk.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a recipe end to end (resumable)")
    p.add_argument("--recipe", default="shapes", choices=["shapes", "tiny"])
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--device", default="auto",
                   help="where the Show-o stages train: auto (a GPU if any, default), cpu, cuda or cuda:N")
    p.set_defaults(fn=_train)
    p = sub.add_parser("eval", help="mini-GenEval + VQA + VQ PSNR of a checkpoint (torch) or its bundle")
    p.add_argument("checkpoint")
    p.add_argument("--bundle", help="evaluate through showo_sdk.Runtime on this exported bundle")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=24,
                   help="MaskGIT steps (default 24: one step per 2.7 of the 64 tokens; the model card's setting)")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-category", type=int, default=50,
                   help="GenEval prompts per category (50: each category's figure within about +-0.07)")
    p.add_argument("--n-vqa", type=int, default=200)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--device", default="cpu",
                   help="torch device of the reference path (cpu or cuda; ignored with --bundle)")
    p.set_defaults(fn=_eval)
    p = sub.add_parser("ship", help="copy a checkpoint without optimizer state (optionally fp16) for the package")
    p.add_argument("checkpoint")
    p.add_argument("dest")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.set_defaults(fn=_ship)
    args = parser.parse_args(argv)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
