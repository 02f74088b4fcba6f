"""Real head-worn-camera photos (ICDAR 2015 incidental scene text) for training and validation.

The data live in `../shared/data/` (CC BY 4.0) and are never copied into the repository:

    icdar2015-train/labels.jsonl          990 photos (1280x720) with word quadrilaterals
    icdar2015-train-words/labels.tsv      4,447 word crops, one per legible word, in the order
                                          of the legible regions in labels.jsonl

Our split, fixed: the first 890 photos (in labels.jsonl order) train, the last 100 photos and
their word crops are the real validation set. Nothing here is tuned on the validation part.

Words are grouped into *lines* (what the detector finds and the translator needs) by
`group_lines`: words of similar height on one baseline, with a gap under ~1.3 x their height,
become one line. The same grouping makes the detector's training targets and the validation
ground truth, so both measure the same thing.

No TensorFlow here: used by training, evaluation and `edgelens bench ocr` alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from device.geometry import order_quad, quad_frame

VAL_PHOTOS = 100
"""The last VAL_PHOTOS photos of labels.jsonl (and their crops) are held out."""

LICENSE = "CC BY 4.0 (ICDAR 2015 Robust Reading Competition, Incidental Scene Text, training set)"


PRETRAINED_CAVEAT = ("Pretrained weights' own training data is not listed per image by their "
                     "authors; public scene-text sets, ICDAR 2015 among them, may be in it, so "
                     "these validation photos and crops may not be unseen by such weights")
"""Said wherever a model starts from pretrained weights (the 3.x detector and recognizer)."""


def data_root() -> Path:
    """`$EDGELENS_DATA` or the `shared/data` folder beside the checkout."""
    env = os.environ.get("EDGELENS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def available() -> bool:
    return (data_root() / "icdar2015-train" / "labels.jsonl").is_file()


@dataclass(frozen=True)
class Word:
    quad: np.ndarray          # float32 [4, 2], clockwise from top-left, photo pixels
    text: str | None
    ignore: bool


@dataclass(frozen=True)
class Photo:
    path: Path
    words: tuple[Word, ...]
    crop_start: int           # index of this photo's first legible word among all crops


@lru_cache(maxsize=1)
def photos() -> tuple[Photo, ...]:
    root = data_root() / "icdar2015-train"
    out, crop_index = [], 0
    with open(root / "labels.jsonl", encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            words = tuple(Word(np.float32(r["points"]).reshape(4, 2), r["text"],
                               bool(r["ignore"])) for r in item["regions"])
            out.append(Photo(root / item["image"], words, crop_index))
            crop_index += sum(not w.ignore for w in words)
    return tuple(out)


def split(name: str) -> tuple[Photo, ...]:
    """'train' (all but the last VAL_PHOTOS) or 'val' (the last VAL_PHOTOS)."""
    every = photos()
    if name == "train":
        return every[:-VAL_PHOTOS]
    if name == "val":
        return every[-VAL_PHOTOS:]
    raise ValueError(f"unknown split {name!r} (train or val)")


def word_crops(split_name: str) -> list[tuple[Path, str]]:
    """(crop path, text) of the legible words of the photos in the split."""
    root = data_root() / "icdar2015-train-words"
    rows = [line.rstrip("\n").split("\t", 1)
            for line in (root / "labels.tsv").read_text(encoding="utf-8").splitlines() if line]
    chosen = split(split_name)
    first = chosen[0].crop_start
    last = chosen[-1].crop_start + sum(not w.ignore for w in chosen[-1].words)
    return [(root / path, text) for path, text in rows[first:last]]


# --- words → lines ------------------------------------------------------------------------------

def group_lines(words, gap: float = 1.3, size_ratio: float = 1.6) -> list[dict]:
    """Merge words into text lines: [{"quad": [4, 2], "text": str | None, "ignore": bool}].

    Two words join when they run the same way (within ~10°), their heights differ by less than
    `size_ratio`, their centres lie within 0.4 x height across the line, and the horizontal gap
    between them is under `gap` x height. Ignored words never join legible ones. A line's quad
    is the rotated rectangle of its words' corners; its text their texts joined by spaces in
    reading order.
    """
    items = [w for w in words]
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    geo = [quad_frame(np.asarray(w.quad, np.float32)) for w in items]
    centres = [np.asarray(w.quad, np.float32).mean(axis=0) for w in items]
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if items[i].ignore != items[j].ignore:
                continue
            (ui, ni, hi), (uj, _nj, hj) = geo[i], geo[j]
            if min(hi, hj) < 1 or max(hi, hj) / min(hi, hj) > size_ratio:
                continue
            if float(ui @ uj) < 0.985:
                continue
            h = (hi + hj) / 2
            d = centres[j] - centres[i]
            if abs(float(d @ ni)) > 0.4 * h:
                continue
            qi, qj = np.asarray(items[i].quad) @ ui, np.asarray(items[j].quad) @ ui
            space = max(qi.min(), qj.min()) - min(qi.max(), qj.max())
            if space > gap * h:
                continue
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    lines = []
    for members in groups.values():
        u = geo[members[0]][0]
        members.sort(key=lambda k: float(centres[k] @ u))
        pts = np.concatenate([np.asarray(items[k].quad, np.float32) for k in members])
        if len(members) == 1:
            quad = order_quad(pts)
        else:
            quad = order_quad(cv2.boxPoints(cv2.minAreaRect(pts)))
        ignore = items[members[0]].ignore
        text = None if ignore else " ".join(items[k].text or "" for k in members).strip()
        lines.append({"quad": quad, "text": text, "ignore": ignore})
    return lines


def load_image(photo: Photo):
    image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {photo.path}")
    return image


# --- recognizer training lines ------------------------------------------------------------------

def _jitter_quad(quad: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    _u, _n, height = quad_frame(quad)
    return (quad + rng.normal(0, amount * max(height, 1.0), quad.shape)).astype(np.float32)


def recognizer_lines(split_name: str = "train", copies: int = 4, seed: int = 7,
                     progress=None, bbox_copies: int = 0, line_height: int = 32,
                     downsample: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """Prepared uint8 lines ([line_height, W], as the recognizer cache stores them) and their
    texts; `downsample` is the model's input columns per output timestep.

    For every legible word and every grouped multi-word line of the split's photos: `copies`
    crops cut by `device.stages.detector.crop_line` (as the live path cuts them) with jittered
    corners, random padding and a random down-and-up scale (small, soft text), plus the
    dataset's own tight word crop. `bbox_copies` more crops per word are cut the way the
    dataset cuts them (the axis-aligned box around a jittered, unrectified quad: slanted and
    rotated text with background), so that such crops read too. Texts outside the charset are
    skipped.
    """
    from calibration.training.recognizer_data import fits
    from device.stages.charset import encode, normalize
    from device.geometry import crop_line
    from device.stages.text_line import prepare_line

    rng = np.random.default_rng(seed)
    lines, texts = [], []

    def add(crop, text):
        try:
            line = prepare_line(crop, line_height)
        except ValueError:
            return
        if fits(text, line.shape[1], downsample):
            lines.append(np.round(line * 255).astype(np.uint8))
            texts.append(text)

    chosen = split(split_name)
    for k, photo in enumerate(chosen):
        image = load_image(photo)
        targets = [w for w in photo.words if not w.ignore]
        targets += [Word(l["quad"], l["text"], False) for l in group_lines(photo.words)
                    if not l["ignore"] and " " in (l["text"] or "")]
        for word in targets:
            text = normalize(word.text or "").strip()
            if not text or len(text) != len((word.text or "").strip()):
                continue
            encode(text)
            quad = order_quad(np.asarray(word.quad, np.float32))
            for _ in range(copies):
                q = _jitter_quad(quad, rng, 0.06)
                try:
                    crop = crop_line(image, q, pad_x=float(rng.uniform(0.02, 0.4)),
                                     pad_y=float(rng.uniform(0.02, 0.3)))
                except Exception:
                    continue
                if rng.random() < 0.4:
                    f = float(rng.uniform(0.4, 0.9))
                    small = cv2.resize(crop, (max(2, int(crop.shape[1] * f)),
                                              max(2, int(crop.shape[0] * f))),
                                       interpolation=cv2.INTER_AREA)
                    crop = cv2.resize(small, (crop.shape[1], crop.shape[0]),
                                      interpolation=cv2.INTER_LINEAR)
                add(crop, text)
            for _ in range(bbox_copies if len(word.quad) == 4 else 0):
                q = _jitter_quad(quad, rng, 0.04)
                x0, y0 = np.floor(q.min(axis=0)).astype(int)
                x1, y1 = np.ceil(q.max(axis=0)).astype(int)
                x0, y0 = max(x0, 0), max(y0, 0)
                x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
                if x1 - x0 >= 4 and y1 - y0 >= 4:
                    add(image[y0:y1, x0:x1], text)
        if progress is not None and (k + 1) % 100 == 0:
            progress(k + 1, len(chosen))
    for path, text in word_crops(split_name):
        text_n = normalize(text).strip()
        crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if crop is not None and text_n and len(text_n) == len(text.strip()):
            add(crop, text_n)
    return lines, texts



# --- detector training and validation frames ----------------------------------------------------

FRAME_WIDTH = 640
"""Photos are used at the glasses' frame size (1280x720 → 640x360)."""


def labelled_frames(split_name: str) -> list[tuple[np.ndarray, list[tuple[np.ndarray, str]],
                                                   list[np.ndarray]]]:
    """(640x360 BGR frame, [(legible line quad, text)], [ignored line quad]) per photo."""
    out = []
    for photo in split(split_name):
        image = load_image(photo)
        scale = FRAME_WIDTH / image.shape[1]
        frame = cv2.resize(image, (FRAME_WIDTH, round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        lines = group_lines(photo.words)
        keep = [(l["quad"] * scale, l["text"]) for l in lines if not l["ignore"]]
        ignore = [l["quad"] * scale for l in lines if l["ignore"]]
        out.append((frame, keep, ignore))
    return out


def detector_frames(split_name: str) -> list[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]]:
    """(640x360 BGR frame, legible line quads, ignored line quads) for each photo of the split."""
    return [(frame, [q for q, _ in keep], ignore)
            for frame, keep, ignore in labelled_frames(split_name)]


def shaped_photos(split_name: str, aspect: tuple[int, int]) -> list[
        tuple[np.ndarray, list[tuple[np.ndarray, str]], list[np.ndarray]]]:
    """The split's photos cut to another shape, as a phone or another camera takes them:
    (BGR image, [(legible line quad, text)], [ignored line quad]) at the photo's own
    resolution. `aspect` (width, height), e.g. (9, 16): a window of the photo's full height
    and that aspect, placed (in steps of 20 px from the left) where it holds the most whole
    legible lines; a line the window cuts becomes an ignored region."""
    out = []
    for photo in split(split_name):
        image = load_image(photo)
        height = image.shape[0]
        width = min(round(height * aspect[0] / aspect[1]), image.shape[1])
        lines = group_lines(photo.words)

        def inside(quad, x0):
            return quad[:, 0].min() >= x0 and quad[:, 0].max() <= x0 + width

        x0 = max(range(0, image.shape[1] - width + 1, 20),
                 key=lambda x: sum(inside(l["quad"], x) for l in lines if not l["ignore"]))
        keep, ignore = [], []
        for line in lines:
            quad = np.asarray(line["quad"], np.float32) - np.float32([x0, 0])
            if quad[:, 0].max() < 0 or quad[:, 0].min() > width:
                continue
            if not line["ignore"] and inside(line["quad"], x0):
                keep.append((quad, line["text"]))
            else:
                ignore.append(quad)
        out.append((np.ascontiguousarray(image[:, x0:x0 + width]), keep, ignore))
    return out
