"""``showo_sdk.Runtime``: generate, understand, inpaint and extrapolate from an engine bundle. No torch.

A thin layer: it validates arguments (``validation``), builds the sequences of SHOWO_SPEC.md §3
(``Prompting``, ``canvas``), and delegates to the T2I and MMU drivers over the bundle's graphs on
the chosen backend. A Runtime may be shared by threads: per-call state lives in each call.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..canvas import extrapolate_canvas, inpaint_canvas, mask_to_grid, merge_extrapolation
from ..errors import BundleError, ConfigError, InputError
from ..imageio import resize_center_crop, to_uint8
from ..prompting import MMU_TEMPLATE, Prompting
from ..tokenizer import TextTokenizer
from . import validation as check
from .backends import Graphs, select_backend
from .bundle import load_bundle
from .mmu import MMUDriver, TextStream, picker
from .t2i import T2IDriver
from .timing import CallTimings, timed

ImageLike = Any  # a path, a PIL.Image or a numpy array (H, W[, C])


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bicubic resize covering ``size`` (H, W), then center crop: the official preprocessing when square."""
    h, w = size
    if h == w:
        return resize_center_crop(image, h)
    scale = max(h / image.height, w / image.width)
    cover = (max(w, round(image.width * scale)), max(h, round(image.height * scale)))
    image = image.resize(cover, Image.Resampling.BICUBIC)
    left, top = (cover[0] - w) // 2, (cover[1] - h) // 2
    return image.crop((left, top, left + w, top + h))


class _Bar:
    """A tqdm bar on stderr for ``progress=True``, created at the first step (when the total is known)."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def __call__(self, step: int, total: int) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="step", file=sys.stderr, leave=False)
        self.bar.update(step + 1 - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Runtime:
    """Runs an engine bundle (``showo-export`` output) on TensorRT, ONNX Runtime CUDA or ONNX Runtime CPU.

    ``backend``: "auto" (TensorRT engines if present and usable here, else ONNX Runtime CUDA if
    available, else ONNX Runtime CPU), or "tensorrt", "ort-cuda", "ort-cpu" (BackendError if it
    cannot run here). ``num_threads``: ONNX Runtime intra-op threads and MaskGIT loop threads (None =
    all cores). ``providers``: ONNX Runtime providers to use instead of the backend's. The bundle is
    verified (checksums, format version, graph names, dtypes and shapes) before anything runs.
    ``low_memory=True`` (ONNX Runtime CPU): graphs compute from the memory-mapped weights file
    instead of private prepacked copies: one copy of the weights for all graphs, loads in a blink;
    fp32 calls ~8% slower, int8 calls 1.3-2.4x slower (figures in the README).
    """

    def __init__(self, path: str | os.PathLike, backend: str = "auto", num_threads: int | None = None,
                 providers: Sequence[Any] | None = None, *, verify_checksums: bool = True,
                 low_memory: bool = False):
        threads = check.num_threads(num_threads)
        check.flag("verify_checksums", verify_checksums)
        check.flag("low_memory", low_memory)
        self.bundle = load_bundle(path, verify_checksums=verify_checksums)
        self.config = self.bundle.config
        try:
            self.tokenizer = TextTokenizer.from_file(self.bundle.tokenizer_path)
            self.tokenizer.check_layout(self.config.layout)
        except ConfigError as exc:
            raise BundleError(f"bundle {self.bundle.root}: {exc}") from None
        self.prompting = Prompting(self.config, self.tokenizer)
        self._choice = select_backend(backend, self.bundle, providers)
        self._graphs = Graphs(self.bundle, self._choice, threads, low_memory=low_memory)
        self._recorder = self._graphs.recorder
        self._t2i = T2IDriver(self._graphs, self.config)
        self._mmu = MMUDriver(self._graphs, self.config)
        self._loop_threads = threads or 0
        self._local = threading.local()

    # ---- what was loaded --------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend in use: "tensorrt", "ort-cuda" or "ort-cpu"."""
        return self._choice.name

    @property
    def backend_reason(self) -> str:
        """Why this backend was picked (for ``auto``: what the faster ones lacked)."""
        return self._choice.reason

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels of a generated image."""
        f = self.bundle.vq_config.downsample_factor
        return self.config.image_grid[0] * f, self.config.image_grid[1] * f

    @property
    def last_timings(self) -> CallTimings | None:
        """Where this thread's last finished public call spent its time: per graph (calls, ms, first
        start) and on the host; ``print(rt.last_timings.table())`` shows it. None before any call."""
        return self._recorder.last

    @property
    def last_seed(self) -> int | None:
        """The seed used by this thread's last generate/inpaint/extrapolate/understand call (drawn if None)."""
        return getattr(self._local, "seed", None)

    def __repr__(self) -> str:
        return (f"Runtime({str(self.bundle.root)!r}, backend={self.backend!r}, precision={self.bundle.precision!r}, "
                f"image_size={self.image_size})")

    # ---- shared steps -----------------------------------------------------------------------
    def _seed(self, seed: Any) -> int:
        value = check.seed(seed)
        if value is None:
            value = secrets.randbits(63)
        self._local.seed = value
        return value

    def _text_ids(self, prompts: list[str]) -> list[list[int]]:
        """Tokenized prompts; longer than the text block: truncated as the spec says, with a warning."""
        room = self.config.max_text_len - 2  # [<|t2i|>, bos] + text + [eos] in max_text_len + 1
        out = []
        for i, p in enumerate(prompts):
            ids = self.tokenizer.encode(p)
            if len(ids) > room:
                warnings.warn(f"prompt {i} is {len(ids)} tokens; the text block holds {room}: only its first {room} "
                              f"tokens are used", UserWarning, stacklevel=3)
            out.append(ids)
        return out

    def _t2i_options(self, steps: Any, guidance_scale: Any, temperature: Any, schedule: Any, seed: Any,
                     greedy: Any, progress: Any) -> tuple[dict[str, Any], _Bar | None]:
        callback = check.progress(progress)
        bar = _Bar("generate") if callback is True else None
        options = {
            "steps": check.steps(steps), "guidance_scale": check.guidance_scale(guidance_scale),
            "temperature": check.temperature(temperature, sampling=False), "schedule": check.schedule(schedule),
            "greedy": check.flag("greedy", greedy), "num_threads": self._loop_threads,
            "progress": bar if bar is not None else (callback or None),
        }
        options["seed"] = self._seed(seed)
        return options, bar

    def _run_t2i(self, cond: np.ndarray, uncond: np.ndarray | None, options: dict[str, Any],
                 bar: _Bar | None) -> np.ndarray:
        try:
            return self._t2i.generate(cond, uncond, **options)
        finally:
            if bar is not None:
                bar.close()

    def _pixels(self, images: list[Image.Image]) -> np.ndarray:
        """PIL images -> float32 (B, 3, H, W) in [-1, 1] at the model's image size."""
        arrays = [np.asarray(_fit(im, self.image_size), dtype=np.float32) / 255.0 for im in images]  # (H, W, 3)
        return ((np.stack(arrays) - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()

    def _encode(self, images: list[Image.Image]) -> np.ndarray:
        pixels = self._pixels(images)
        graph, step = self._graphs["vq_encoder"], self._graphs.max_batch("vq_encoder")
        return np.concatenate([graph.run({"pixels": pixels[i:i + step]})["codes"]
                               for i in range(0, len(pixels), step)]).astype(np.int64)  # (B, N)

    def _render(self, codes: np.ndarray, grid: tuple[int, int], output: str) -> list:
        if output == "codes":
            return [c.reshape(grid) for c in codes]
        pixels = self.decode_codes(codes, grid)  # uint8 (B, H, W, 3)
        if output == "numpy":
            return list(pixels)
        return [Image.fromarray(p) for p in pixels]

    # ---- image tokens -----------------------------------------------------------------------
    @timed
    def encode_image(self, image: ImageLike | list[ImageLike]) -> np.ndarray:
        """Image(s) -> int64 codes (B, N): resized and center-cropped to the model's size, then VQ-encoded."""
        images = image if isinstance(image, list) else [image]
        if not images:
            raise InputError("image list is empty")
        return self._encode([check.image(im, f"image[{i}]" if len(images) > 1 else "image")
                             for i, im in enumerate(images)])

    @timed
    def decode_codes(self, codes: np.ndarray, grid: tuple[int, int] | None = None) -> np.ndarray:
        """Codes (B, h*w) or (B, h, w) in [0, K) -> uint8 images (B, 16h, 16w, 3); ``grid`` defaults to the model's."""
        codes = np.asarray(codes)
        if grid is None:
            grid = codes.shape[1:] if codes.ndim == 3 else tuple(self.config.image_grid)
        if not isinstance(grid, (tuple, list, np.ndarray)) or len(grid) != 2:
            raise InputError(f"grid must be a pair (h, w) of ints; got {check.describe(grid)}")
        top = self._graphs.values_max("vq_decoder", "grid") or [1 << 16, 1 << 16]
        gh = check.int_in("grid[0]", grid[0], 1, top[0])
        gw = check.int_in("grid[1]", grid[1], 1, top[-1])
        max_tokens = self._graphs.dim_max("vq_decoder", "num_tokens")
        if max_tokens is not None and gh * gw > max_tokens:
            raise InputError(f"grid {gh} x {gw} = {gh * gw} tokens is more than the bundle's vq_decoder takes "
                             f"({max_tokens})")
        flat = codes.reshape(codes.shape[0], -1) if codes.ndim == 3 else codes
        k = self.config.layout.codebook_size
        if flat.ndim != 2 or flat.shape[1] != gh * gw or not len(flat) or not np.issubdtype(flat.dtype, np.integer):
            raise InputError(f"codes must be integers (B, {gh * gw}) or (B, {gh}, {gw}); "
                             f"got {codes.dtype} {codes.shape}")
        if flat.min() < 0 or flat.max() >= k:
            raise InputError(f"codes must lie in [0, {k - 1}]; got [{flat.min()}, {flat.max()}]")
        graph, step = self._graphs["vq_decoder"], self._graphs.max_batch("vq_decoder")
        grid_arr = np.array([gh, gw], dtype=np.int64)
        pixels = [to_uint8(graph.run({"codes": flat[i:i + step].astype(np.int64), "grid": grid_arr})["pixels"])
                  for i in range(0, len(flat), step)]  # uint8 per chunk: no float32 copy of every image
        return np.concatenate(pixels)

    # ---- text to image ----------------------------------------------------------------------
    @timed
    def generate(self, prompt: str | list[str], steps: int = 18, guidance_scale: float = 1.75,
                 temperature: float = 1.0, schedule: str = "cosine", seed: int | None = None, greedy: bool = False,
                 output: str = "pil", progress: bool | Callable[[int, int], object] = False):
        """Prompt(s) -> image(s): PIL images, uint8 (H, W, 3) arrays (``output="numpy"``) or (h, w) codes.

        Defaults: the official 18 cosine steps; guidance 1.75, the official 256-px setting (the
        reference function's default of 0 turns guidance off). ``seed`` makes sampling reproducible
        (None draws one, see ``last_seed``); ``greedy=True`` is argmax without noise: deterministic.
        A str gives one image, a list gives a list.
        """
        prompts, batch = check.prompts(prompt)
        out = check.output(output)
        options, bar = self._t2i_options(steps, guidance_scale, temperature, schedule, seed, greedy, progress)
        cond = self.prompting.t2i_ids(self._text_ids(prompts))
        uncond = self.prompting.t2i_null_ids(len(prompts)) if options["guidance_scale"] > 0 else None
        images = self._render(self._run_t2i(cond, uncond, options, bar), tuple(self.config.image_grid), out)
        return images if batch else images[0]

    @timed
    def generate_codes(self, cond_ids: np.ndarray, uncond_ids: np.ndarray | None = None, steps: int = 18,
                       guidance_scale: float = 1.75, temperature: float = 1.0, schedule: str = "cosine",
                       seed: int | None = None, greedy: bool = False,
                       progress: bool | Callable[[int, int], object] = False) -> np.ndarray:
        """Full T2I sequences (B, L) in unified ids (SHOWO_SPEC.md §3) -> int64 codes (B, N) in [0, K).

        The image part holds [MASK] where codes are generated and code + offset where they are known.
        ``uncond_ids`` (the null prompts, same shape) are needed when guidance_scale > 0; only their
        text block is read: the null rows always see the same canvas as their prompt.
        """
        cond = check.t2i_ids(cond_ids, self.config, "cond_ids")
        options, bar = self._t2i_options(steps, guidance_scale, temperature, schedule, seed, greedy, progress)
        uncond = None
        if options["guidance_scale"] > 0:
            if uncond_ids is None:
                raise InputError("guidance_scale > 0 needs uncond_ids (the null prompts, e.g. "
                                 "Runtime.prompting.t2i_null_ids(B)); pass guidance_scale=0 for no guidance")
            uncond = check.t2i_ids(uncond_ids, self.config, "uncond_ids")
            if uncond.shape != cond.shape:
                raise InputError(f"uncond_ids must have the shape of cond_ids {cond.shape}; got {uncond.shape}")
        return self._run_t2i(cond, uncond, options, bar)

    @timed
    def inpaint(self, image: ImageLike, mask: ImageLike, prompt: str | list[str], steps: int = 16,
                guidance_scale: float = 1.75, temperature: float = 1.0, schedule: str = "cosine",
                seed: int | None = None, greedy: bool = False, output: str = "pil",
                progress: bool | Callable[[int, int], object] = False):
        """Regenerate the white region of ``mask`` in ``image`` following ``prompt`` (SHOWO_SPEC.md §5).

        The mask is converted to one channel and resized to the image when their sizes differ; both
        get the same resize and center crop, then the mask is resized (bicubic) to the token grid and
        cells >= 0.5 are regenerated. Defaults: the README's 256-px inpainting setting (16 steps, 1.75).
        """
        prompts, batch = check.prompts(prompt)
        out = check.output(output)
        picture = check.image(image)
        region = check.image(mask, "mask", mode="L")
        options, bar = self._t2i_options(steps, guidance_scale, temperature, schedule, seed, greedy, progress)
        if region.size != picture.size:
            region = region.resize(picture.size, Image.Resampling.BICUBIC)
        grid = tuple(self.config.image_grid)
        cells = mask_to_grid(np.asarray(_fit(region, self.image_size), dtype=np.float32) / 255.0, grid)  # (h, w)
        if not cells.any():
            raise InputError("mask selects no image token: paint white (>= 50% over a token's cell) where the image "
                             "should be regenerated")
        codes = np.repeat(self._encode([picture]), len(prompts), axis=0)  # (B, N)
        canvas = inpaint_canvas(codes, cells, self.config.layout.codebook_size)
        cond = self.prompting.t2i_ids(self._text_ids(prompts), canvas)
        uncond = self.prompting.t2i_null_ids(len(prompts), canvas) if options["guidance_scale"] > 0 else None
        images = self._render(self._run_t2i(cond, uncond, options, bar), grid, out)
        return images if batch else images[0]

    @timed
    def extrapolate(self, image: ImageLike, prompt: str | list[str], direction: str = "left", offset: int = 0,
                    steps: int = 16, guidance_scale: float = 1.75, temperature: float = 1.0,
                    schedule: str = "cosine", seed: int | None = None, greedy: bool = False, output: str = "pil",
                    progress: bool | Callable[[int, int], object] = False):
        """Extend ``image`` beyond one side (left, right, up, down) following ``prompt`` (SHOWO_SPEC.md §5).

        The kept strip of ``side // 2 - offset`` token columns (rows) moves to the far side of a
        canvas, the rest is generated, and the result joins the generated canvas with the original's
        remaining columns (rows): wider (or taller) than the model's square images.
        """
        prompts, batch = check.prompts(prompt)
        out = check.output(output)
        side = check.direction(direction)
        shift = check.offset(offset, self.config, side)
        picture = check.image(image)
        options, bar = self._t2i_options(steps, guidance_scale, temperature, schedule, seed, greedy, progress)
        grid = tuple(self.config.image_grid)
        codes = np.repeat(self._encode([picture]), len(prompts), axis=0)  # (B, N)
        canvas = extrapolate_canvas(codes, grid, side, shift, self.config.layout.codebook_size)
        cond = self.prompting.t2i_ids(self._text_ids(prompts), canvas)
        uncond = self.prompting.t2i_null_ids(len(prompts), canvas) if options["guidance_scale"] > 0 else None
        generated = self._run_t2i(cond, uncond, options, bar)
        merged = merge_extrapolation(generated, codes, grid, side, shift)  # (B, h', w')
        images = self._render(merged.reshape(len(merged), -1), merged.shape[1:], out)
        return images if batch else images[0]

    # ---- understanding ----------------------------------------------------------------------
    def _answers(self, prompts: list[np.ndarray], max_new_tokens: int, eot: int, greedy: bool, top_k: int | None,
                 temperature: float, seed: int) -> list[list[int]]:
        """Token answers of MMU prompts (each (L_i,)): rows of one length batched, up to the graphs' batch."""
        by_length: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_length.setdefault(len(p), []).append(i)
        answers: list[list[int]] = [[] for _ in prompts]
        per_call, call = self._mmu.rows_per_call(), 0
        for rows in by_length.values():
            for start in range(0, len(rows), per_call):
                chunk = rows[start:start + per_call]
                pick = picker(greedy, top_k, temperature, (seed + call) % 2**64)
                call += 1
                for step in self._mmu.generate(np.stack([prompts[i] for i in chunk]), max_new_tokens, eot, pick):
                    for i, token in zip(chunk, step):
                        if token is not None:
                            answers[i].append(token)
        return answers

    def _mmu_options(self, greedy: Any, top_k: Any, temperature: Any, seed: Any) -> dict[str, Any]:
        greedy = check.flag("greedy", greedy)
        k = check.top_k(top_k)
        temp = check.real_in("temperature", temperature, 0.0, check.MAX_SCALE)
        if greedy and (k is not None or temp != 1.0):
            raise InputError("top_k and temperature apply when sampling: pass greedy=False with them")
        if not greedy:
            temp = check.temperature(temp, sampling=True)
        return {"greedy": greedy, "top_k": k, "temperature": temp, "seed": self._seed(seed)}

    @timed
    def understand_ids(self, image_codes: np.ndarray, question_ids: np.ndarray, max_new_tokens: int = 100,
                       eot_id: int | None = None, greedy: bool = True, top_k: int | None = None,
                       temperature: float = 1.0, seed: int | None = None) -> list[list[int]]:
        """Answer ids per row for codes (B, N) and template ids (Lq,) or (B, Lq); eot included if hit.

        The prompt is ``[<|mmu|>, <|soi|>] + (codes + offset) + [<|eoi|>, <|sot|>] + question_ids``.
        """
        codes = check.image_codes(image_codes, self.config)
        questions = check.question_ids(question_ids, len(codes), self.config)
        prompt = self.prompting.mmu_ids(codes, questions)  # (B, L)
        limit = check.max_new_tokens(max_new_tokens, prompt.shape[1], self.config)
        eot = check.eot_id(eot_id, self.config)
        options = self._mmu_options(greedy, top_k, temperature, seed)
        return self._answers(list(prompt), limit, eot, **options)

    def _decode_text(self, ids: list[int]) -> str:
        text_vocab = self.config.layout.text_vocab_size
        return self.tokenizer.decode([t for t in ids if t < text_vocab], skip_special_tokens=True)

    @timed
    def understand(self, image: ImageLike | list[ImageLike], question: str | list[str], max_new_tokens: int = 100,
                   greedy: bool = True, top_k: int | None = None, temperature: float = 1.0,
                   seed: int | None = None, stream: bool = False):
        """Answer a question about an image: greedy by default, until eot or ``max_new_tokens``.

        Images of any size are resized and center-cropped as the official pipeline does. A list of
        images and/or questions (equal lengths, or one shared) gives a list of answers.
        ``stream=True`` (one image, one question) returns an iterator of text pieces as they are decoded.
        """
        many = isinstance(image, list) or isinstance(question, list)
        images = image if isinstance(image, list) else [image]
        questions = question if isinstance(question, list) else [question]
        if not images or not questions:
            raise InputError("image and question lists must not be empty")
        if len(images) != len(questions) and 1 not in (len(images), len(questions)):
            raise InputError(f"got {len(images)} images and {len(questions)} questions: pass one of each per row, "
                             f"or one image (question) shared by all")
        if check.flag("stream", stream) and many:
            raise InputError("stream=True answers one image and one question; pass a single image and a str")
        questions = [check.question(q) for q in questions]
        pictures = [check.image(im, f"image[{i}]" if many else "image") for i, im in enumerate(images)]
        rows = max(len(pictures), len(questions))
        q_ids = [self.tokenizer.encode(MMU_TEMPLATE.format(question=q)) for q in questions]
        options = self._mmu_options(greedy, top_k, temperature, seed)
        codes = self._encode(pictures)  # (B_img, N)
        prompts = [self.prompting.mmu_ids(codes[i % len(codes)][None], q_ids[i % len(q_ids)])[0] for i in range(rows)]
        limit = check.max_new_tokens(max_new_tokens, max(len(p) for p in prompts), self.config)
        eot = self.config.layout.eos_id
        if stream:
            return self._stream(prompts[0], limit, eot, options)
        answers = self._answers(prompts, limit, eot, **options)
        texts = [self._decode_text([t for t in a if t != eot]).strip() for a in answers]
        return texts if many else texts[0]

    def _stream(self, prompt: np.ndarray, max_new_tokens: int, eot: int, options: dict[str, Any]) -> Iterator[str]:
        text = TextStream(self._decode_text)
        pick = picker(options["greedy"], options["top_k"], options["temperature"], options["seed"])
        for (token,) in self._mmu.generate(prompt[None], max_new_tokens, eot, pick):
            if token is None or token == eot:
                break
            piece = text.push(token)
            if piece:
                yield piece
        tail = text.finish()
        if tail:
            yield tail
