"""``showo``: generate, ask, inpaint, extrapolate and demo from the command line.

``--engine`` defaults to the bundle of the shipped model (``showo_sdk/assets/shapes``), exported
once into a cache directory (``$SHOWO_CACHE``, else ``~/.cache/showo-sdk``) named after a hash of
the model's files. Exit codes: 0 done; 2 bad input (arguments, files, bundle); 1 any other failure.
Errors are one line, without a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import BundleError, CheckpointError, ConfigError, InputError, ShowoError
from .utils.atomic import atomic_path

PROG = "showo"
SHIPPED_MODEL = Path(__file__).resolve().parent / "assets" / "shapes"
DEMO_PROMPT = "a red circle left of a blue square"
DEMO_QUESTION = "What color is the circle?"


def cache_root() -> Path:
    """Where exported bundles of checkpoints are cached: $SHOWO_CACHE, else $XDG_CACHE_HOME or ~/.cache."""
    if os.environ.get("SHOWO_CACHE"):
        return Path(os.environ["SHOWO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "showo-sdk"


def checkpoint_digest(checkpoint: Path) -> str:
    """sha256 over a checkpoint directory's files (relative paths and contents), hex."""
    from .runtime.bundle import sha256_file

    digest = hashlib.sha256()
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        digest.update(path.relative_to(checkpoint).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def cached_bundle_path(checkpoint: str | os.PathLike) -> Path:
    """``<cache>/<checkpoint name>-<digest[:16]>/engine.plan``: changes whenever a checkpoint file changes."""
    ckpt = Path(checkpoint).resolve()
    return cache_root() / f"{ckpt.name}-{checkpoint_digest(ckpt)[:16]}" / "engine.plan"


def _check_checkpoint(checkpoint: Path, shipped: bool) -> None:
    if (checkpoint / "config.json").is_file():
        return
    if shipped:
        raise CheckpointError(
            f"the shipped model is missing: {checkpoint} (config.json, model.safetensors, tokenizer.json, vq/) is "
            f"not installed with this showo-sdk; pass --checkpoint DIR (a checkpoint) or --engine DIR (a bundle)")
    raise CheckpointError(f"{checkpoint} is not a checkpoint directory (no config.json)")


def ensure_bundle(checkpoint: str | os.PathLike, progress: bool = True, shipped: bool = False) -> Path:
    """The cached bundle of ``checkpoint``, exported on first use (needs the export extra: torch, onnx)."""
    ckpt = Path(checkpoint)
    _check_checkpoint(ckpt, shipped)
    bundle = cached_bundle_path(ckpt)
    if (bundle / "manifest.json").is_file():
        from .runtime.bundle import load_bundle

        try:
            load_bundle(bundle)
            return bundle
        except BundleError as exc:
            print(f"{PROG}: the cached bundle is unusable ({exc}); exporting again", file=sys.stderr)
    try:
        from .export import ExportOptions, export_checkpoint
    except ImportError as exc:
        raise ShowoError(f"exporting {ckpt} needs the export extra (pip install 'showo-sdk[export]': torch, onnx): "
                         f"{exc}; or pass --engine DIR with a bundle exported elsewhere") from None
    print(f"{PROG}: exporting {ckpt} to {bundle} (first use; later runs reuse it)", file=sys.stderr)
    export_checkpoint(ckpt, bundle, options=ExportOptions(force=bundle.exists(), progress=progress))
    return bundle


def _runtime(args: argparse.Namespace):
    from .runtime import Runtime

    engine = args.engine
    if engine is None:
        engine = ensure_bundle(SHIPPED_MODEL, progress=not args.quiet, shipped=True)
    return Runtime(engine, backend=args.backend, num_threads=args.threads, low_memory=args.low_memory)


def _read_image(path: str, name: str = "image", mode: str = "RGB"):
    """Read an input image before the engine is prepared, so a wrong path fails at once, not after an export."""
    from .runtime import validation

    return validation.image(path, name, mode)


def _writable(path: str | Path) -> Path:
    """Check that a PNG can be written at ``path`` (creating its folder) before the work that produces it."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc}") from None
    if out.is_dir():
        raise InputError(f"cannot write {out}: it is a directory; give the path of a .png file")
    if not os.access(out.parent, os.W_OK):
        raise InputError(f"cannot write {out}: no permission to write in {out.parent}")
    return out


def _save(image, out: Path) -> Path:
    """Write the PNG through a temp file and a rename: a file already at ``out`` is only replaced by a whole one."""
    try:
        with atomic_path(out) as tmp:
            image.save(tmp, format="PNG")
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot write {out}: {exc}") from None
    return out


def _sampling(args: argparse.Namespace) -> dict:
    return {"steps": args.steps, "guidance_scale": args.guidance, "temperature": args.temperature,
            "schedule": args.schedule, "seed": args.seed, "greedy": args.greedy, "progress": not args.quiet}


def _timings(rt, args: argparse.Namespace) -> None:
    """With --timings: the last call's per-stage latency table on stderr (stdout keeps the results)."""
    if args.timings and rt.last_timings is not None:
        print(rt.last_timings.table(), file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> None:
    out = _writable(args.output)
    rt = _runtime(args)
    image = rt.generate(args.prompt, **_sampling(args))
    _timings(rt, args)
    print(_save(image, out))


def cmd_inpaint(args: argparse.Namespace) -> None:
    picture, mask = _read_image(args.image), _read_image(args.mask, "mask", mode="L")
    out = _writable(args.output)
    rt = _runtime(args)
    image = rt.inpaint(picture, mask, args.prompt, **_sampling(args))
    _timings(rt, args)
    print(_save(image, out))


def cmd_extrapolate(args: argparse.Namespace) -> None:
    picture, out = _read_image(args.image), _writable(args.output)
    rt = _runtime(args)
    image = rt.extrapolate(picture, args.prompt, direction=args.direction, offset=args.offset, **_sampling(args))
    _timings(rt, args)
    print(_save(image, out))


def _answer(rt, image, question: str, args: argparse.Namespace) -> str:
    """Print the answer as it is decoded (stdout, flushed), and return it."""
    options = {"max_new_tokens": args.max_new_tokens, "greedy": not args.sample}
    if args.sample:
        options.update(top_k=args.top_k, temperature=args.temperature, seed=args.seed)
    pieces = []
    for piece in rt.understand(image, question, stream=True, **options):
        pieces.append(piece)
        print(piece, end="", flush=True)
    print()
    _timings(rt, args)
    return "".join(pieces)


def cmd_ask(args: argparse.Namespace) -> None:
    picture = _read_image(args.image)
    _answer(_runtime(args), picture, args.question, args)


def cmd_demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    generated, extrapolated = _writable(out / "generated.png"), _writable(out / "extrapolated.png")
    if args.engine is None:
        checkpoint = Path(args.checkpoint) if args.checkpoint else SHIPPED_MODEL
        args.engine = ensure_bundle(checkpoint, progress=not args.quiet, shipped=args.checkpoint is None)
    rt = _runtime(args)
    scheme = rt.bundle.manifest.get("int8_scheme")  # int8 bundles: "accurate" or "fast"
    print(f"engine: {rt.bundle.root} ({rt.backend}, {rt.bundle.precision}{f' {scheme}' if scheme else ''})")
    image = rt.generate(args.prompt, **_sampling(args))
    _timings(rt, args)
    print(f"generated: {_save(image, generated)}  ({args.prompt!r}, seed {rt.last_seed})")
    print(f"Q: {args.question}\nA: ", end="", flush=True)
    _answer(rt, image, args.question, args)
    wide = rt.extrapolate(image, args.prompt, direction="right", **_sampling(args))
    _timings(rt, args)
    print(f"extrapolated: {_save(wide, extrapolated)}  ({wide.width}x{wide.height}, right)")


def _common(p: argparse.ArgumentParser, engine_help: str) -> None:
    p.add_argument("--engine", metavar="DIR", help=engine_help)
    p.add_argument("--backend", choices=("auto", "ort-cpu", "ort-cuda", "tensorrt"), default="auto",
                   help="inference backend (default auto: TensorRT, else ONNX Runtime CUDA, else CPU)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    p.add_argument("--low-memory", action="store_true",
                   help="ONNX Runtime CPU: one memory-mapped copy of the weights for all graphs (slower, int8 most)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--timings", action="store_true", help="print each call's per-stage latency table on stderr")


def _t2i_options(p: argparse.ArgumentParser, steps: int, output: str | None) -> None:
    if output is not None:
        p.add_argument("-o", "--output", default=output, metavar="PNG", help=f"image to write (default {output})")
    p.add_argument("--steps", type=int, default=steps, help=f"MaskGIT steps (default {steps})")
    p.add_argument("--guidance", type=float, default=1.75, help="classifier-free guidance scale (default 1.75)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--schedule", default="cosine", help="mask schedule: cosine, linear, pow<K>, sigmoid")
    p.add_argument("--seed", type=int, help="random seed (default: a fresh one)")
    p.add_argument("--greedy", action="store_true", help="argmax decoding without noise (deterministic)")


def _ask_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=100, help="longest answer in tokens (default 100)")
    p.add_argument("--sample", action="store_true", help="sample the answer instead of greedy decoding")
    p.add_argument("--top-k", type=int, help="with --sample: keep the k most likely tokens")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Show-o from an engine bundle: text to image, visual "
                                                            "question answering, inpainting, extrapolation.")
    parser.add_argument("--version", action="version", version=f"showo-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    engine_help = "engine bundle (showo-export output); default: the shipped model, exported on first use"

    p = sub.add_parser("generate", help="text to image")
    p.add_argument("prompt")
    _t2i_options(p, 18, "showo.png")
    _common(p, engine_help)
    p.set_defaults(run=cmd_generate)

    p = sub.add_parser("ask", help="answer a question about an image (streamed)")
    p.add_argument("image")
    p.add_argument("question")
    _ask_options(p)
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample: softmax temperature")
    p.add_argument("--seed", type=int, help="with --sample: random seed")
    _common(p, engine_help)
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("inpaint", help="regenerate the white region of a mask")
    p.add_argument("image")
    p.add_argument("mask", help="mask image: white = regenerate")
    p.add_argument("prompt")
    _t2i_options(p, 16, "inpainted.png")
    _common(p, engine_help)
    p.set_defaults(run=cmd_inpaint)

    p = sub.add_parser("extrapolate", help="extend an image beyond one side")
    p.add_argument("image")
    p.add_argument("prompt")
    p.add_argument("--direction", choices=("left", "right", "up", "down"), default="left")
    p.add_argument("--offset", type=int, default=0, help="tokens by which the kept strip shrinks (default 0)")
    _t2i_options(p, 16, "extrapolated.png")
    _common(p, engine_help)
    p.set_defaults(run=cmd_extrapolate)

    p = sub.add_parser("demo", help="the shipped model: export once, generate, answer, save PNGs")
    p.add_argument("--checkpoint", metavar="DIR", help="demo this checkpoint instead of the shipped model")
    p.add_argument("--out", default="showo-demo", metavar="DIR", help="where to save the PNGs (default showo-demo)")
    p.add_argument("--prompt", default=DEMO_PROMPT, help=f"default {DEMO_PROMPT!r}")
    p.add_argument("--question", default=DEMO_QUESTION, help=f"default {DEMO_QUESTION!r}")
    _t2i_options(p, 18, None)
    _ask_options(p)
    _common(p, "engine bundle to demo instead of exporting a checkpoint")
    p.set_defaults(run=cmd_demo, seed=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (InputError, ConfigError, CheckpointError, BundleError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (ShowoError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, no traceback
        detail = " ".join(str(exc).split())[:500]
        print(f"{PROG}: error: unexpected {type(exc).__name__}: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
