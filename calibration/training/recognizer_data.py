"""Data for the line recognizer: the cached training set, calibration lines, the held-out set.

No TensorFlow here. Lines are stored as `prepare_line(crop)` rounded to uint8 (x * 255),
which is exactly what the int8 model's input (scale 1/255, zero point -128) can represent.

    build_cache(...)      render training chunks with worker processes into data/recognizer/
    load_cache(...)       the cached lines as (list of [H, W] uint8, list of text)
    heldout_set(...)      the reproducible unseen-font test set (crops + texts)
    calibration_lines(n)  prepared float lines for int8 calibration (training fonts)
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.stages.text_line import DOWNSAMPLE, LINE_HEIGHT, prepare_line

log = logging.getLogger(__name__)

CACHE_DIR = Path("data/recognizer")
CHUNK = 5000
TEST_SEED = 20261122
SCENE_SEED = 20261123
CALIBRATION_SEED = 777


def height_tag(line_height: int) -> str:
    """The cache file names' mark of a line height ('' for the 32-px lines of 1.x/2.x)."""
    return "" if line_height == LINE_HEIGHT else f"_h{line_height}"


def fits(text: str, width: int, downsample: int = DOWNSAMPLE) -> bool:
    """CTC can align `text` to width / downsample timesteps (a blank between repeats)."""
    repeats = sum(a == b for a, b in zip(text, text[1:]))
    return len(text) + repeats <= width // downsample


def sample_prepared(rng: np.random.Generator, split: str, scene: bool = False,
                    line_height: int = LINE_HEIGHT, downsample: int = DOWNSAMPLE):
    """(prepared float line [line_height, W], text, BGR crop) whose text fits the width."""
    line, text, crop, _family = _sample_prepared(rng, split, scene, line_height, downsample)
    return line, text, crop


def _sample_prepared(rng: np.random.Generator, split: str, scene: bool,
                     line_height: int = LINE_HEIGHT, downsample: int = DOWNSAMPLE):
    from device.synth.fonts import discover
    from device.synth.lines import sample_styled_line
    while True:
        crop, text, style = sample_styled_line(rng, split, scene=scene)
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            continue
        line = prepare_line(crop, line_height)
        if fits(text, line.shape[1], downsample):
            family = next(f.family for f in discover() if f.path == style.font_path)
            return line, text, crop, family


def _render_chunk(args) -> str:
    path, seed, n, scene_fraction, line_height, downsample = args
    rng = np.random.default_rng(seed)
    lines, texts = [], []
    for _ in range(n):
        line, text, _crop = sample_prepared(rng, "train", rng.random() < scene_fraction,
                                            line_height, downsample)
        lines.append(np.round(line * 255).astype(np.uint8))
        texts.append(text)
    widths = np.array([l.shape[1] for l in lines], np.int32)
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, pixels=np.concatenate(lines, axis=1), widths=widths,
             texts=np.array(texts, dtype=object).astype(str))
    tmp.rename(path)
    return str(path)


@dataclass(frozen=True)
class CacheSpec:
    lines: int = 200_000
    seed: int = 1
    scene_fraction: float = 0.2
    workers: int = 2
    directory: Path = CACHE_DIR
    line_height: int = LINE_HEIGHT
    downsample: int = DOWNSAMPLE

    def chunk_paths(self) -> list[Path]:
        n = (self.lines + CHUNK - 1) // CHUNK
        height = height_tag(self.line_height)
        return [self.directory / f"train{height}_s{self.seed}_{i:05d}.npz" for i in range(n)]


def build_cache(spec: CacheSpec, progress=None) -> list[Path]:
    """Render the missing chunks of the training cache (deterministic per chunk index)."""
    spec.directory.mkdir(parents=True, exist_ok=True)
    paths = spec.chunk_paths()
    todo = [(p, spec.seed * 1_000_003 + i, CHUNK, spec.scene_fraction, spec.line_height,
             spec.downsample)
            for i, p in enumerate(paths) if not p.exists()]
    if todo:
        from device.synth import fonts, vocab
        fonts.discover()
        vocab.dictionary_words()  # parsed once in the parent, shared by the forked workers
        with mp.get_context("fork").Pool(spec.workers) as pool:
            for done in pool.imap_unordered(_render_chunk, todo):
                if progress is not None:
                    progress(done)
    return paths


def load_cache(paths) -> tuple[list[np.ndarray], list[str]]:
    lines, texts = [], []
    for path in paths:
        with np.load(path) as data:
            pixels, widths = data["pixels"], data["widths"]
            texts.extend(str(t) for t in data["texts"])
        offsets = np.concatenate([[0], np.cumsum(widths)])
        lines.extend(pixels[:, offsets[i]:offsets[i + 1]] for i in range(len(widths)))
    return lines, texts


def heldout_set(n: int = 1000, scene: bool = False, seed: int | None = None):
    """(list of BGR crops, list of texts): unseen font families, fixed seed."""
    crops, texts, _families = heldout_set_with_families(n, scene, seed)
    return crops, texts


def heldout_set_with_families(n: int = 1000, scene: bool = False, seed: int | None = None):
    """`heldout_set` plus the font family of each line (same seed, same lines)."""
    if seed is None:
        seed = SCENE_SEED if scene else TEST_SEED
    rng = np.random.default_rng(seed)
    crops, texts, families = [], [], []
    for _ in range(n):
        _line, text, crop, family = _sample_prepared(rng, "test", scene)
        crops.append(crop)
        texts.append(text)
        families.append(family)
    return crops, texts, families


def calibration_lines(n: int = 400, seed: int = CALIBRATION_SEED, line_height: int = LINE_HEIGHT,
                      downsample: int = DOWNSAMPLE) -> list[np.ndarray]:
    """Prepared float lines from the training fonts (never the held-out set)."""
    rng = np.random.default_rng(seed)
    return [sample_prepared(rng, "train", rng.random() < 0.2, line_height, downsample)[0]
            for _ in range(n)]
