"""``showo-export``: turn a Show-o checkpoint (official showlab layout or ours) into a validated engine bundle.

Exit codes: 0 done; 2 bad input (arguments, missing or mismatched files, unwritable output);
1 any other failure (export, validation, TensorRT). Errors are one line, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from showo_sdk.errors import CheckpointError, ConfigError, InputError, ShowoError

from .common import MAX_BATCH
from .exporter import PRECISIONS, ExportOptions, ExportResult, export_checkpoint
from .quantize import INT8_SCHEMES
from .validate import FP32_TOLERANCE

PROG = "showo-export"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Export a Show-o checkpoint to an engine bundle (ONNX graphs, manifest, "
                               "tokenizer, optional TensorRT engines), validated against PyTorch.")
    p.add_argument("checkpoint", metavar="CKPT_DIR", help="checkpoint directory (official showlab layout or ours)")
    p.add_argument("--out", required=True, metavar="DIR", help="bundle directory to write, e.g. engine.plan")
    p.add_argument("--llm-config", metavar="DIR", help="phi-1.5 directory with config.json (official checkpoints)")
    p.add_argument("--tokenizer", metavar="DIR", help="directory (or file) with tokenizer.json; default: CKPT_DIR, "
                                                     "then --llm-config")
    p.add_argument("--vq", metavar="DIR", help="MAGVIT-v2 checkpoint directory; default: CKPT_DIR/vq")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="transformer graphs: fp32 (default), int8 (dynamic int8 for CPU), fp16 (for GPUs); "
                        "VQ graphs are always fp32")
    p.add_argument("--int8-scheme", choices=INT8_SCHEMES, default=None,
                   help="with --precision int8: accurate (default; activations and weights split into two int8 "
                        "parts, three int8 products: greedy codes as fp32's, ~2x an fp32 step) or fast (one int8 "
                        "product: ~4.6x an fp32 step, but 13-15%% of the shipped model's greedy codes change)")
    trt = p.add_mutually_exclusive_group()
    trt.add_argument("--tensorrt", dest="tensorrt", action="store_const", const="require",
                     help="also build TensorRT engines (TensorRT and an NVIDIA GPU required; fails without them)")
    trt.add_argument("--tensorrt-auto", dest="tensorrt", action="store_const", const="auto",
                     help="build TensorRT engines where TensorRT and a GPU exist; otherwise export the ONNX bundle "
                          "without engines and say why")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--tolerance", type=float, default=FP32_TOLERANCE,
                   help=f"max |diff| allowed between fp32 graphs and PyTorch (default {FP32_TOLERANCE:g})")
    p.add_argument("--max-batch", type=int, default=MAX_BATCH,
                   help=f"largest batch the graphs are declared for (TensorRT profiles; default {MAX_BATCH})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def format_table(result: ExportResult) -> str:
    """The final table (graph, precision, file, size, max |diff|, logits argmax agreement, export and check
    time) and a summary: greedy decoding agreement, TensorRT, bundle path."""
    header = ("graph", "precision", "file", "size", "max |diff|", "argmax", "export s", "check s")
    lines = [header]
    checks = result.manifest["validation"]["graphs"]
    for r in result.rows:
        diff = "n/a" if r.max_abs_diff is None else f"{r.max_abs_diff:.2e}"
        argmax = checks[r.graph].get("logits_argmax_agreement")
        lines.append((r.graph, r.precision, r.file, _size(r.bytes), diff, "" if argmax is None else f"{argmax:.1%}",
                      f"{r.export_s:.1f}", f"{r.validate_s:.1f}"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    out += [f"note: {r.graph}: {r.note}" for r in result.rows if r.note]
    weights = result.manifest.get("weights")
    if weights:
        out.append(f"weights: {weights['file']} {_size(weights['stored_bytes'])}, shared by {len(weights['graphs'])} "
                   f"graphs ({_size(weights['referenced_bytes'])} if each kept its own copy)")
    gen = result.manifest["validation"]["generation"]
    if "skipped" in gen:
        out.append(f"greedy decoding vs PyTorch: skipped ({gen['skipped']})")
    else:
        out.append(f"greedy decoding vs PyTorch fp32: T2I codes {gen['t2i_code_agreement']:.2%} equal "
                   f"({gen['t2i']['tokens']} codes), MMU tokens {gen['mmu_token_agreement']:.2%} equal "
                   f"({gen['mmu']['tokens']} tokens)")
        if not gen["meets_target"]:
            out.append(f"warning: greedy agreement is below the {gen['target']:.0%} target for this checkpoint")
    trt = result.manifest["tensorrt"]
    if trt["requested"]:
        out.append("TensorRT engines: built" if trt["built"] else f"TensorRT engines: not built: {trt.get('reason')}")
    scheme = result.manifest.get("int8_scheme")
    out.append(f"bundle: {result.bundle} ({result.manifest['precision']}{f', {scheme} scheme' if scheme else ''})")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.int8_scheme and args.precision != "int8":
        parser.error(f"--int8-scheme applies to --precision int8, not {args.precision}")
    try:
        options = ExportOptions(precision=args.precision, int8_scheme=args.int8_scheme or INT8_SCHEMES[0],
                                tensorrt=args.tensorrt, force=args.force,
                                tolerance=args.tolerance, max_batch=args.max_batch, progress=not args.quiet)
        result = export_checkpoint(args.checkpoint, args.out, llm_config=args.llm_config, tokenizer=args.tokenizer,
                                   vq=args.vq, options=options)
    except (InputError, CheckpointError, ConfigError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ShowoError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
