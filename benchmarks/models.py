"""The models the benchmarks run: random-weight Show-o at phi-1.5 width (any depth), its VQ, a tokenizer,
and their engine bundles (fp32, int8 in the exporter's default "accurate" scheme, and "int8-fast", the
one-product scheme), cached under ``benchmarks/.cache/<spec key>/``.

Weights are regenerated from a seed wherever they are needed (torch side), so no checkpoint is
written: the 24-layer model would be another 5.8 GB on disk. The bundles are written by a lean
exporter that calls the graph classes of ``showo_sdk.export`` one graph at a time, then quantizes
from the fp32 files with the torch model already freed: the full ``export_bundle`` pipeline also
validates every graph against PyTorch and drives all four transformer sessions at once, which at 24
layers needs ~4 x 5.8 GB of ONNX Runtime sessions next to the 5.8 GB torch model and does not fit in
24 GB. The bundles still pass ``load_bundle`` (checksums, names, dtypes, shapes), and the bench
scripts compare the runtime's greedy tokens with the reference (``--greedy``).

``--model shapes`` uses the shipped model (``showo_sdk/assets/shapes``), ``--checkpoint DIR`` any
checkpoint in our format (config.json, model.safetensors, tokenizer.json, vq/); both are exported
with the full (validated) pipeline.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from showo_sdk.config import ShowoConfig, TokenLayout, TransformerConfig, VQConfig

CACHE_DIR = Path(os.environ.get("SHOWO_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "showo_sdk" / "assets" / "shapes"
PHI_TEXT_VOCAB, PHI_BOS = 50295, 50256
MODELS = ("random", "shapes", "checkpoint")
VQS = ("official", "small", "tiny")
#: Bundle kinds benchmarks build: (precision, int8 scheme) each; "ort-<kind>" names the Runtime variant on it.
BUNDLE_KINDS = {"fp32": ("fp32", None), "int8": ("int8", "accurate"), "int8-fast": ("int8", "fast")}


@dataclass(frozen=True)
class ModelSpec:
    """What to build: a random-weight Show-o of these sizes (phi-1.5 width by default) or the shipped model."""

    model: str = "random"
    layers: int = 4
    hidden: int = 2048
    heads: int = 32
    mlp: int = 8192
    text_vocab: int = PHI_TEXT_VOCAB
    codebook_bits: int = 13
    grid: int = 16
    max_text_len: int = 128
    vq: str = "official"
    max_batch: int = 8
    seed: int = 0
    checkpoint: str = ""  # model "shapes" / "checkpoint": the checkpoint directory

    @property
    def from_checkpoint(self) -> bool:
        return self.model != "random"

    def key(self) -> str:
        """Directory name of this spec's cache: readable sizes + a hash of every field."""
        if self.from_checkpoint:
            path = Path(self.checkpoint).resolve()
            stamp = (path / "config.json").stat().st_mtime_ns if (path / "config.json").exists() else 0
            tag = hashlib.sha256(f"{path}:{stamp}".encode()).hexdigest()[:8]
            return f"{self.model}_{path.name}_{tag}"
        fields = {k: v for k, v in asdict(self).items() if k != "checkpoint"}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
        return f"L{self.layers}_d{self.hidden}_g{self.grid}_vq-{self.vq}_{digest}"

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def vq_config(self) -> VQConfig:
        res = self.grid * 16
        if self.vq == "official":
            return VQConfig(codebook_bits=self.codebook_bits, resolution=res)
        if self.vq == "small":
            return VQConfig(base_channels=32, encoder_ch_mult=(1, 1, 2, 2, 4), encoder_num_res_blocks=(1,) * 5,
                            decoder_ch_mult=(1, 1, 2, 2, 4), decoder_num_res_blocks=(1,) * 5,
                            codebook_bits=self.codebook_bits, resolution=res, norm_groups=8)
        return VQConfig(base_channels=8, encoder_ch_mult=(1, 1, 2, 2, 2), encoder_num_res_blocks=(1,) * 5,
                        decoder_ch_mult=(1, 1, 2, 2, 2), decoder_num_res_blocks=(1,) * 5,
                        codebook_bits=self.codebook_bits, resolution=res, norm_groups=4)

    def config(self) -> ShowoConfig:
        """The ShowoConfig of a random model (for ``shapes``: read from the shipped checkpoint)."""
        if self.from_checkpoint:
            from showo_sdk.model.showo_io import read_config

            return read_config(self.checkpoint)[0]
        layout = TokenLayout(text_vocab_size=self.text_vocab, codebook_size=2 ** self.codebook_bits,
                             bos_id=min(PHI_BOS, self.text_vocab - 1))
        tc = TransformerConfig(vocab_size=layout.vocab_size, hidden_size=self.hidden, num_layers=self.layers,
                               num_heads=self.heads, intermediate_size=self.mlp,
                               max_position_embeddings=max(2048, self.max_text_len + 1 + self.grid ** 2 + 2 + 128))
        return ShowoConfig(layout=layout, transformer=tc, max_text_len=self.max_text_len,
                           image_grid=(self.grid, self.grid))


def results_name(prefix: str, spec: ModelSpec) -> str:
    """Default results name of a bench script: ``{prefix}`` (4 layers), ``{prefix}_24l``, ``{prefix}_shapes``..."""
    if spec.from_checkpoint:
        return f"{prefix}_shapes" if spec.model == "shapes" else f"{prefix}_{spec.key()}"
    if spec == ModelSpec(layers=spec.layers):
        return prefix if spec.layers == 4 else f"{prefix}_{spec.layers}l"
    return f"{prefix}_custom_{spec.key()}"


def add_model_args(parser: argparse.ArgumentParser, layers: int = 4) -> None:
    """The model flags every bench script shares."""
    g = parser.add_argument_group("model (random weights unless --model shapes)")
    g.add_argument("--model", choices=MODELS[:2], default="random",
                   help="random: phi-1.5-width Show-o with random weights; shapes: the shipped model")
    g.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="benchmark this checkpoint (our format, with tokenizer.json and vq/) instead")
    g.add_argument("--layers", type=int, default=layers, help=f"transformer layers (default {layers}; phi-1.5 has 24)")
    g.add_argument("--hidden", type=int, default=2048, help="hidden size (default 2048, phi-1.5)")
    g.add_argument("--heads", type=int, default=None, help="attention heads (default hidden / 64)")
    g.add_argument("--mlp", type=int, default=None, help="MLP size (default 4 x hidden)")
    g.add_argument("--text-vocab", type=int, default=PHI_TEXT_VOCAB, help="text vocabulary (default 50295, phi-1.5)")
    g.add_argument("--codebook-bits", type=int, default=13, help="log2 of the codebook size (default 13: 8192)")
    g.add_argument("--grid", type=int, default=16, help="image tokens per side (default 16: N = 256)")
    g.add_argument("--text-len", type=int, default=128, help="max text tokens (default 128: text block 129)")
    g.add_argument("--vq", choices=VQS, default="official",
                   help="VQ decoder width: official MAGVIT-v2 (default), small, or tiny (smoke tests)")
    g.add_argument("--weight-seed", dest="seed", type=int, default=0, help="seed of the random weights (default 0)")
    g.add_argument("--cache-dir", type=Path, default=None, help=f"bundle cache (default {CACHE_DIR})")


def add_run_args(parser: argparse.ArgumentParser, prefix: str, variants: Sequence[str], warmup_help: str,
                 quick_help: str) -> None:
    """The run flags bench_t2i and bench_mmu share: repeats, warm-up, threads, variants, output."""
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per variant (default 3; 1 at >= 24 layers)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the variant list this many times, each round in rotated order and each variant in a "
                             "fresh process; ratios are also reported round by round (paired runs minutes apart, "
                             "for machines whose speed drifts) (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help=warmup_help)
    parser.add_argument("--threads", type=int, default=None, help="torch / ONNX Runtime threads (default all cores)")
    parser.add_argument("--variants", default=",".join(variants), help=f"comma list from {','.join(variants)}")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    add_output_args(parser, prefix)
    parser.add_argument("--child", help=argparse.SUPPRESS)


def add_output_args(parser: argparse.ArgumentParser, prefix: str) -> None:
    """Where a bench script writes: ``--name`` (default from :func:`results_name`), ``--out-dir``, ``--no-plot``."""
    parser.add_argument("--name", default=None, help=f"results name (default {prefix}, {prefix}_24l, {prefix}_shapes ...)")
    parser.add_argument("--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def chosen_variants(args: argparse.Namespace, known: Sequence[str]) -> list[str]:
    """``--variants`` as a list; SystemExit naming any unknown one."""
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in known]
    if bad:
        raise SystemExit(f"unknown variants {bad}; choose from {tuple(known)}")
    return variants


def run_variants(script: str, tag: str, spec: ModelSpec, args: argparse.Namespace, variants: Sequence[str],
                 base: dict[str, Any], summary: Callable[[dict[str, Any]], str]) -> tuple[dict, dict]:
    """Each variant in its own process (``script --child``); ort-* variants get their bundle, exported once.

    With ``args.rounds`` > 1 the list runs that many times, rotated by one variant per round (with two
    variants: A B, B A, A B), and each variant's rounds are merged by :func:`merge_rounds`.
    Returns (results by variant, bundles by precision).
    """
    from common import run_child  # scripts put benchmarks/ on sys.path, as for this module

    rounds = args.rounds
    if rounds < 1:
        raise SystemExit(f"--rounds must be >= 1; got {rounds}")
    kinds = tuple(k for k in BUNDLE_KINDS if f"ort-{k}" in variants)
    bundles = ensure_bundles(spec, kinds, args.cache_dir) if kinds else {}
    by_round: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(rounds):
        for v in variants[i % len(variants):] + variants[:i % len(variants)]:
            params = {**base, "variant": v}
            if v.startswith("ort-"):
                params["bundle"] = str(bundles[v[4:]])
            label = f"{v} (round {i + 1}/{rounds})" if rounds > 1 else v
            print(f"[{tag}] {label} ...", file=sys.stderr, flush=True)
            by_round[v].append(run_child(script, params))
            print(f"[{tag}] {label}: {summary(by_round[v][-1])}", file=sys.stderr, flush=True)
    return {v: merge_rounds(by_round[v]) for v in variants}, bundles


def merge_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One variant's results over rounds: every timed figure (a key of its runs) is the median over all
    rounds' runs, ``peak_rss_mb`` the largest, ``load_s`` the median; ``rounds`` keeps each round's own
    medians (what :func:`ratios_by_round` pairs). Other keys come from the first round."""
    from common import median

    timed = list(rounds[0]["runs"][0])
    runs = [run for r in rounds for run in r["runs"]]
    out = dict(rounds[0])
    out.update({k: median([run[k] for run in runs]) for k in timed})
    out.update(runs=runs, peak_rss_mb=max(r["peak_rss_mb"] for r in rounds),
               load_s=median([r["load_s"] for r in rounds]), rounds=[{k: r[k] for k in timed} for r in rounds])
    return out


def ratios_by_round(results: dict[str, dict[str, Any]],
                    ratio: Callable[[dict[str, Any], dict[str, Any]], dict[str, float]]) -> dict[str, dict[str, list]]:
    """``ratio(official_round, variant_round)`` for each round, per variant: ratios of runs made minutes
    apart, so a drifting machine shows as spread instead of hiding in one ratio. Empty without 'official'."""
    ref = results.get("official")
    if ref is None:
        return {}
    out: dict[str, dict[str, list]] = {}
    for v, r in results.items():
        pairs = [ratio(a, b) for a, b in zip(ref["rounds"], r["rounds"])]
        out[v] = {k: [p[k] for p in pairs] for k in pairs[0]}
    return out


def spec_from_args(args: argparse.Namespace, **overrides: Any) -> ModelSpec:
    heads = args.heads if args.heads is not None else max(1, args.hidden // 64)
    mlp = args.mlp if args.mlp is not None else 4 * args.hidden
    spec = ModelSpec(model=args.model, layers=args.layers, hidden=args.hidden, heads=heads, mlp=mlp,
                     text_vocab=args.text_vocab, codebook_bits=args.codebook_bits, grid=args.grid,
                     max_text_len=args.text_len, vq=args.vq, seed=args.seed)
    checkpoint = str(Path(args.checkpoint).resolve()) if getattr(args, "checkpoint", None) else (
        str(SHIPPED_MODEL) if args.model == "shapes" else "")
    if checkpoint:
        spec = replace(spec, model="checkpoint" if args.checkpoint else "shapes", checkpoint=checkpoint)
        try:  # the sizes recorded next to the figures are the checkpoint's
            cfg = spec.config()
            tc = cfg.transformer
            spec = replace(spec, layers=tc.num_layers, hidden=tc.hidden_size, heads=tc.num_heads,
                           mlp=tc.intermediate_size, text_vocab=cfg.layout.text_vocab_size,
                           codebook_bits=cfg.layout.codebook_size.bit_length() - 1, grid=cfg.image_grid[0],
                           max_text_len=cfg.max_text_len, vq="checkpoint")
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint ends the run with its reason
            what = "the shipped model" if spec.model == "shapes" else "the checkpoint"
            raise SystemExit(f"cannot read {what} at {checkpoint}: {exc}") from None
    return replace(spec, **overrides)


def cache_dir(args_dir: Path | None = None) -> Path:
    return Path(args_dir) if args_dir is not None else CACHE_DIR


# ---- tokenizer ------------------------------------------------------------------------------------
def phi_sized_tokenizer(text_vocab: int = PHI_TEXT_VOCAB, bos: int = PHI_BOS):
    """A byte-level BPE with exactly ``text_vocab`` text ids and ``<|endoftext|>`` at ``bos``, as phi-1.5's.

    No merges: text encodes to byte tokens (the benchmarks feed ids, the vocabulary size is what matters).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    from showo_sdk.tokenizer import TextTokenizer

    bos = min(bos, text_vocab - 1)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    if text_vocab < len(alphabet) + 1:
        raise ValueError(f"text vocabulary must be >= {len(alphabet) + 1}, got {text_vocab}")
    vocab = {c: i for i, c in enumerate(alphabet)}
    while len(vocab) < text_vocab:
        idx = len(vocab)
        vocab["<|endoftext|>" if idx == bos else f"<|t{idx}|>"] = idx
    if "<|endoftext|>" not in vocab:  # bos fell inside the byte alphabet: put it last
        vocab.pop(next(k for k, v in vocab.items() if v == text_vocab - 1))
        vocab["<|endoftext|>"] = text_vocab - 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return TextTokenizer(tok)


# ---- torch side ------------------------------------------------------------------------------------
def build_torch(spec: ModelSpec, with_vq: bool = True):
    """(model, config, vq or None): the reference modules in eval mode, without gradients.

    Random models: the weights follow from ``spec.seed``; the lm_head bias of [MASK] is -1e4 so that
    greedy MMU answers never emit it (the benchmarks use [MASK] as an eot that never comes: every
    run generates exactly the asked number of tokens).
    """
    import torch

    from showo_sdk.model.magvit import MagvitV2
    from showo_sdk.model.transformer import ShowoTransformer

    if spec.from_checkpoint:
        from showo_sdk.model import load_magvit, load_showo

        ckpt = Path(spec.checkpoint)
        model = load_showo(ckpt).eval().requires_grad_(False)
        vq = load_magvit(ckpt / "vq").eval().requires_grad_(False) if with_vq else None
        return model, model.showo_config, vq
    config = spec.config()
    torch.manual_seed(spec.seed)
    model = ShowoTransformer(config.transformer).eval().requires_grad_(False)
    with torch.no_grad():
        model.showo.lm_head.bias[config.layout.mask_id] = -1e4
    model.showo_config = config
    vq = None
    if with_vq:
        torch.manual_seed(spec.seed + 1)
        vq = MagvitV2(spec.vq_config()).eval().requires_grad_(False)
    return model, config, vq


def never_eot(config: ShowoConfig) -> int:
    """The eot id the benchmarks pass: [MASK], which the models never emit in MMU answers."""
    return config.layout.mask_id


# ---- bundles ---------------------------------------------------------------------------------------
def bundle_dir(spec: ModelSpec, kind: str, root: Path | None = None) -> Path:
    return cache_dir(root) / spec.key() / f"engine.{kind}"


def _say(progress: bool, msg: str) -> None:
    if progress:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"[models] {msg} (peak RSS {peak:.1f} GiB)", file=sys.stderr, flush=True)


def _manifest_body(config: ShowoConfig, vq: VQConfig, kind: str, graphs: dict[str, Any],
                   spec: ModelSpec, tok) -> dict[str, Any]:
    from showo_sdk.export.bundle_writer import creation_info, model_section

    precision, scheme = BUNDLE_KINDS[kind]
    return {"created": creation_info({"benchmark_spec": json.dumps(spec.describe())}), "precision": precision,
            **({"int8_scheme": scheme} if scheme else {}),
            "model": model_section(config, vq),
            "tokenizer": {"file": "tokenizer.json", "text_vocab_size": tok.text_vocab_size, "bos_id": tok.bos_id},
            "graphs": graphs,
            "validation": {"skipped": "benchmark bundle (random weights) written by benchmarks/models.py; the graphs "
                                      "are those of showo_sdk.export, validated by its tests"},
            "tensorrt": {"requested": None, "built": False}}


def _export_fp32(spec: ModelSpec, out: Path, progress: bool) -> None:
    import torch

    from showo_sdk.export.bundle_writer import graph_entry, write_manifest
    from showo_sdk.export.common import export_graph
    from showo_sdk.export.decode_step import DecodeStep
    from showo_sdk.export.mmu_prefill import MMUPrefill
    from showo_sdk.export.t2i_prefix import T2IPrefix
    from showo_sdk.export.t2i_step import T2IStep
    from showo_sdk.export.vq_decoder import VQDecoder
    from showo_sdk.export.vq_encoder import VQEncoder
    from showo_sdk.runtime.bundle import load_bundle
    from showo_sdk.utils.atomic import atomic_dir

    start = time.perf_counter()
    model, config, vq = build_torch(spec)
    tok = phi_sized_tokenizer(spec.text_vocab)
    tok.check_layout(config.layout)
    _say(progress, f"built {spec.key()} in {time.perf_counter() - start:.1f} s; exporting to {out}")
    graphs: dict[str, Any] = {}
    with atomic_dir(out, overwrite=True) as tmp, torch.no_grad():
        for cls in (VQEncoder, VQDecoder):
            g = cls(vq, spec.max_batch)
            t0 = time.perf_counter()
            exporter = export_graph(g, tmp / f"{g.name}.onnx")
            graphs[g.name] = graph_entry(g.spec(), tmp / f"{g.name}.onnx", "fp32", exporter)
            _say(progress, f"  {g.name}: {time.perf_counter() - t0:.1f} s")
        for cls in (T2IPrefix, T2IStep, MMUPrefill, DecodeStep):
            g = cls(model, config, "fp32", spec.max_batch, cast=model)
            t0 = time.perf_counter()
            exporter = export_graph(g, tmp / f"{g.name}.onnx")
            graphs[g.name] = graph_entry(g.spec(), tmp / f"{g.name}.onnx", "fp32", exporter)
            _say(progress, f"  {g.name}: {time.perf_counter() - t0:.1f} s")
            del g
            gc.collect()
        tok.save(tmp / "tokenizer.json")
        write_manifest(tmp, _manifest_body(config, spec.vq_config(), "fp32", graphs, spec, tok))
        load_bundle(tmp)


def _quantize_int8(spec: ModelSpec, src: Path, out: Path, kind: str, progress: bool) -> None:
    """An int8 bundle: the fp32 bundle's transformer graphs quantized (torch not loaded), VQ graphs linked."""
    from showo_sdk.export.bundle_writer import file_entry, write_manifest
    from showo_sdk.export.common import graph_files
    from showo_sdk.export.quantize import quantize_int8
    from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS, load_bundle
    from showo_sdk.utils.atomic import atomic_dir

    fp32 = load_bundle(src, verify_checksums=False)
    tok = phi_sized_tokenizer(spec.text_vocab)
    graphs: dict[str, Any] = {}
    with atomic_dir(out, overwrite=True) as tmp:
        for name, info in fp32.graphs.items():
            entry = dict(info.entry)  # same declaration (inputs, outputs, dims, notes); new file and precision
            if name in TRANSFORMER_GRAPHS:
                dst = tmp / f"{name}.int8.onnx"
                t0 = time.perf_counter()
                quantize_int8(info.path, dst, BUNDLE_KINDS[kind][1])
                gc.collect()
                _say(progress, f"  {name} {kind}: {time.perf_counter() - t0:.1f} s")
                entry.pop("external_data", None)
                entry.update(file=dst.name, **file_entry(dst), precision="int8")
                files = graph_files(dst)
                if len(files) > 1:
                    entry["external_data"] = {"file": files[1].name, **file_entry(files[1])}
            else:
                for f in [info.path] + ([src / entry["external_data"]["file"]] if entry.get("external_data") else []):
                    try:
                        os.link(f, tmp / f.name)
                    except OSError:
                        shutil.copy2(f, tmp / f.name)
            graphs[name] = entry
        tok.save(tmp / "tokenizer.json")
        write_manifest(tmp, _manifest_body(fp32.config, fp32.vq_config, kind, graphs, spec, tok))
        load_bundle(tmp)


def _export_checkpoint(spec: ModelSpec, out: Path, kind: str, progress: bool) -> None:
    from showo_sdk.export import ExportOptions, export_checkpoint

    ckpt = Path(spec.checkpoint)
    if not (ckpt / "config.json").is_file():
        what = "the shipped model" if spec.model == "shapes" else "the checkpoint"
        raise SystemExit(f"{what} is not there ({ckpt} has no config.json); train or install it first")
    precision, scheme = BUNDLE_KINDS[kind]
    options = ExportOptions(precision=precision, progress=progress, force=True,
                            **({"int8_scheme": scheme} if scheme else {}))
    export_checkpoint(ckpt, out, options=options)


def _ignore_cache(root: Path) -> None:
    """Keep the cache (GBs of ONNX) out of git even before .gitignore lists it: a '*' .gitignore inside."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / ".gitignore"
    if not marker.exists():
        marker.write_text("# benchmark bundles (GBs): never committed\n*\n", encoding="utf-8")


def _usable(path: Path, kind: str) -> bool:
    """A complete bundle of ``kind`` this SDK still reads, exported at today's opset (older ones are
    rebuilt: a benchmark must time the graphs the exporter writes now)."""
    from showo_sdk.errors import ShowoError
    from showo_sdk.export.common import OPSET
    from showo_sdk.runtime.bundle import MANIFEST, load_bundle

    if not (path / MANIFEST).is_file():
        return False
    try:
        bundle = load_bundle(path, verify_checksums=False)
    except ShowoError as exc:
        print(f"[models] rebuilding {path}: {exc}", file=sys.stderr)
        return False
    old = sorted({str(g.entry.get("opset")) for g in bundle.graphs.values() if g.entry.get("opset") != OPSET})
    if old:
        print(f"[models] rebuilding {path}: its graphs are opset {', '.join(old)}, the exporter writes {OPSET}",
              file=sys.stderr)
        return False
    scheme = bundle.manifest.get("int8_scheme")
    if scheme != BUNDLE_KINDS[kind][1]:
        print(f"[models] rebuilding {path}: its int8 scheme is {scheme}, {kind} wants {BUNDLE_KINDS[kind][1]}",
              file=sys.stderr)
        return False
    return True


def ensure_bundles(spec: ModelSpec, kinds: tuple[str, ...] = ("fp32",), root: Path | None = None,
                   progress: bool = True) -> dict[str, Path]:
    """Bundles of ``spec`` of each kind (:data:`BUNDLE_KINDS`), exported on first use and reused afterwards."""
    out: dict[str, Path] = {}
    _ignore_cache(cache_dir(root))
    for kind in kinds:
        if kind not in BUNDLE_KINDS:
            raise ValueError(f"benchmarks build {tuple(BUNDLE_KINDS)} bundles, not {kind!r}")
        path = bundle_dir(spec, kind, root)
        if not _usable(path, kind):
            start = time.perf_counter()
            if spec.from_checkpoint:
                _export_checkpoint(spec, path, kind, progress)
            elif kind == "fp32":
                _export_fp32(spec, path, progress)
            else:
                src = ensure_bundles(spec, ("fp32",), root, progress)["fp32"]
                _quantize_int8(spec, src, path, kind, progress)
            gc.collect()
            _say(progress, f"{kind} bundle ready in {time.perf_counter() - start:.1f} s: {path}")
        out[kind] = path
    return out


def bundle_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description="Build (or show) the benchmark bundles of one model spec.")
    add_model_args(parser)
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"], choices=list(BUNDLE_KINDS),
                        help="bundle kinds: fp32, int8 (the exporter's default accurate scheme), int8-fast")
    parser.add_argument("--save-checkpoint", type=Path, metavar="DIR",
                        help="write the random model as a checkpoint in our format (for showo-export) instead; its "
                             "[MASK] logit is -1e4 (one fp32 ulp there is 1e-3), so export it with --tolerance 4e-3")
    args = parser.parse_args()
    spec = spec_from_args(args)
    if args.save_checkpoint is not None:
        from showo_sdk.model.showo_io import save_pretrained

        model, config, vq = build_torch(spec)
        save_pretrained(model, args.save_checkpoint, config, tokenizer=phi_sized_tokenizer(spec.text_vocab), vq=vq)
        print(f"checkpoint: {args.save_checkpoint}")
        return
    for precision, path in ensure_bundles(spec, tuple(args.precision), args.cache_dir).items():
        print(f"{precision}: {path} ({bundle_bytes(path) / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
