"""Text-line detector: one int8 FCN that predicts a text-kernel probability map, then OpenCV.

The model (DB family, probability branch only) sees the frame resized to a fixed input
(320x192 for 640x360 frames) and predicts, at half its input resolution, the probability
that a pixel lies in the *shrunk* core of a text line. Post-processing: threshold, contours,
minimum-area rectangle, score = mean probability inside the contour, unclip the rectangle by
area * unclip_ratio / perimeter, map it back to frame coordinates, and order its corners
TL, TR, BR, BL along the reading direction (left to right; lines within ±90° of upright).
The geometry the detector and its users share (quads, IoU, matching, line crops) is in
`device/geometry.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.errors import InputError, ModelError
from device.geometry import order_quad
from device.runtime import ResizeError, TFLiteModel, quantize

INPUT_SIZE = (320, 192)
"""(width, height) of the model input the shipped detector was trained at."""
OUTPUT_STRIDE = 2
"""Input pixels per probability-map pixel."""


@dataclass(frozen=True)
class DetectorParams:
    bin_threshold: float = 0.5     # probability above which a map pixel is text kernel
    box_threshold: float = 0.9     # a region's mean probability must reach this
    unclip_ratio: float = 0.0      # kernel rectangle grows by area * ratio / perimeter
    min_area: float = 30.0         # smallest region kept, in frame pixels²
    max_regions: int = 64          # most regions returned (highest scores kept)
    upsample: int = 1              # contours on a map enlarged this much (2.x: 2, its map is 1/4)


@dataclass(frozen=True)
class TextRegion:
    polygon: np.ndarray            # float32 [4, 2]: TL, TR, BR, BL in frame coordinates
    score: float


# --- post-processing ---------------------------------------------------------------------------

def regions_from_map(prob: np.ndarray, frame_size: tuple[int, int], params: DetectorParams,
                     stride_xy: tuple[float, float]) -> list[TextRegion]:
    """Text regions in frame coordinates from a [h, w] probability map.

    `stride_xy` is the number of frame pixels per map pixel in x and y; `frame_size` is
    (width, height) of the frame, used to clip the quads.
    """
    prob = np.asarray(prob, np.float32)
    if params.upsample > 1:
        # a coarse map (the 2.x detector predicts at 1/4 of its input): contours on a
        # bilinear enlargement, so that a small line's box is not quantized to map pixels
        k = int(params.upsample)
        prob = cv2.resize(prob, (prob.shape[1] * k, prob.shape[0] * k),
                          interpolation=cv2.INTER_LINEAR)
        stride_xy = (stride_xy[0] / k, stride_xy[1] / k)
    mask = (prob > params.bin_threshold).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    sx, sy = stride_xy
    fw, fh = frame_size
    regions = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        patch = np.zeros((h, w), np.uint8)
        cv2.fillPoly(patch, [contour - [x, y]], 1)
        score = float(cv2.mean(prob[y:y + h, x:x + w], patch)[0])
        if score < params.box_threshold:
            continue
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        rw, rh = rw + 1.0, rh + 1.0          # pixel centres → pixel extents
        grow = rw * rh * params.unclip_ratio / (2.0 * (rw + rh))
        rect = ((cx + 0.5, cy + 0.5), (rw + 2 * grow, rh + 2 * grow), angle)
        box = cv2.boxPoints(rect) * np.float32([sx, sy])
        box[:, 0] = np.clip(box[:, 0], 0, fw - 1)
        box[:, 1] = np.clip(box[:, 1], 0, fh - 1)
        if abs(cv2.contourArea(box)) < params.min_area:
            continue
        regions.append(TextRegion(order_quad(box), round(score, 4)))
    regions.sort(key=lambda r: -r.score)
    regions = regions[:params.max_regions]
    regions.sort(key=lambda r: (float(r.polygon[:, 1].mean()), float(r.polygon[:, 0].min())))
    return regions


# --- the wrapper -------------------------------------------------------------------------------

def _as_bgr(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {frame.dtype}")
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise InputError(f"expected a gray, BGR or BGRA image, got shape {frame.shape}")


def params_for(manifest: dict, overrides=None) -> DetectorParams:
    """The model's own post-processing parameters (its manifest), with every config value
    that is set (>= 0; -1 means "the model's") put over them."""
    values = dict(manifest.get("postprocessing", {}).get("params", {}))
    unknown = sorted(set(values) - set(DetectorParams.__dataclass_fields__))
    if unknown:
        raise ModelError(f"the manifest's postprocessing names unknown parameters: "
                         f"{', '.join(map(str, unknown))[:200]}")
    for name in DetectorParams.__dataclass_fields__:
        given = getattr(overrides, name, None) if overrides is not None else None
        if given is not None and given >= 0:
            values[name] = given
    whole = [name for name, field in DetectorParams.__dataclass_fields__.items()
             if field.type in (int, "int") and name in values
             and not isinstance(values[name], int)]
    if whole:
        raise ModelError(f"post-processing parameters {', '.join(whole)} must be whole numbers")
    return DetectorParams(**values)


RESIZE_STEP = 32
"""A resized detector's input sides are multiples of this (the network halves its input five
times)."""
RESIZE_LIMIT = (1920, 1088)
"""The largest input a detector is resized to."""
ASPECT_TOLERANCE = math.log(1.15)
"""A frame whose aspect ratio is within 15 % of the input's runs at the input's own size
(a 640x360 frame on 640x352 or 672x352); beyond it, at its own shape (keep_aspect)."""


def artifact_for(version, overrides=None) -> tuple[Path, tuple[int, int] | None]:
    """(detector file, input size to resize it to or None) of a store version at the
    resolution the config asks for ([detector] input_width/height; 0: the version's default
    artifact at its own size).

    A converted detector has a fixed input size, so a version ships one int8 file per
    operating resolution it was calibrated at (manifest "resolutions": {"640x352":
    "detector_640x352.tflite"}). Any other resolution runs the version's default file resized
    at load: the network is fully convolutional, so it reads a larger input as it reads a
    larger frame (more pixels for small text; BENCHMARKS.md, "OCR on real photos", measures
    it). Its sides must be multiples of 32. Detector 3.0.1 and later resize; the graphs of
    earlier versions have fixed-size upsampling, and the Detector refuses them at load.
    """
    width = getattr(overrides, "input_width", 0) if overrides is not None else 0
    height = getattr(overrides, "input_height", 0) if overrides is not None else 0
    if width <= 0 or height <= 0:
        return version.artifact, None
    files = version.manifest.get("resolutions", {})
    key = f"{int(width)}x{int(height)}"
    if key in files:
        return version.directory / files[key], None
    shape = version.manifest.get("signatures", {}).get("serving_default", {}).get(
        "inputs", [{}])[0].get("shape")
    if shape and len(shape) == 4 and (shape[2], shape[1]) == (width, height):
        return version.artifact, None
    if (width % RESIZE_STEP or height % RESIZE_STEP or width > RESIZE_LIMIT[0]
            or height > RESIZE_LIMIT[1] or min(width, height) < 2 * RESIZE_STEP):
        offered = ", ".join(sorted(files)) or (f"{shape[2]}x{shape[1]}" if shape else "?")
        raise ModelError(f"{version.name} {version.version} has no {key} detector, and its "
                         f"default file runs resized only to sides that are multiples of "
                         f"{RESIZE_STEP}, from {2 * RESIZE_STEP} up to "
                         f"{RESIZE_LIMIT[0]}x{RESIZE_LIMIT[1]}; [detector] input_width/height "
                         f"can be one of: {offered}, such a size, or 0")
    return version.artifact, (int(width), int(height))


class Detector:
    """Finds text lines in a BGR frame (any size; resized to the model's input)."""

    def __init__(self, model_path: str | Path, backend: str = "auto", num_threads: int = 2,
                 params: DetectorParams | None = None,
                 input_size: tuple[int, int] | None = None, keep_aspect: bool = True):
        """`input_size` (width, height): the model resized to it at load (artifact_for).
        `keep_aspect`: a frame of another shape than the input runs at its own shape
        (input_size_for)."""
        try:
            self.model = TFLiteModel(model_path, backend=backend, num_threads=num_threads,
                                     input_shape=None if input_size is None else
                                     (1, input_size[1], input_size[0], 3))
        except ResizeError as exc:
            raise ModelError(f"{model_path} cannot run at {input_size[0]}x{input_size[1]}: "
                             "its graph has fixed-size layers (detector 3.0.1 and later "
                             "resize); set [detector] input_width/height to a resolution the "
                             f"version ships, or 0 ({exc})") from exc
        self.params = params or DetectorParams()
        spec = self.model.inputs[0]
        if len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 3:
            raise ModelError(f"{model_path}: expected a [1, H, W, 3] image input, the model "
                             f"takes {list(spec.shape)}")
        self.input_size = (spec.shape[2], spec.shape[1])
        # pixel value -> model input in one table lookup: the int8 input of a quantized model
        # (bit-identical to quantizing the [-1, 1] floats), the floats themselves otherwise
        self._table = quantize((np.arange(256, dtype=np.float32) - 127.5) / 127.5, spec)
        out = self.model.outputs[0].shape
        if len(out) != 4 or out[3] != 1:
            raise ModelError(f"{model_path}: expected a [1, h, w, 1] probability map, the "
                             f"model gives {list(out)}")
        self.map_size = (out[2], out[1])
        self.keep_aspect = keep_aspect
        self._fixed = False     # True once the graph has refused another input size

    @classmethod
    def for_version(cls, version, overrides=None, backend: str = "auto",
                    num_threads: int = 2) -> "Detector":
        """A store version's detector as the config's [detector] section (`overrides`) asks
        for it: at its resolution (artifact_for) with its post-processing (params_for)."""
        path, size = artifact_for(version, overrides)
        return cls(path, backend=backend, num_threads=num_threads,
                   params=params_for(version.manifest, overrides), input_size=size,
                   keep_aspect=getattr(overrides, "keep_aspect", True))

    @property
    def backend(self) -> str:
        return self.model.backend

    def input_size_for(self, frame_shape) -> tuple[int, int]:
        """(width, height) the model runs at for a frame of this shape (H, W, ...): its own
        input size, or with `keep_aspect` the frame's shape at about as many pixels, sides
        multiples of RESIZE_STEP (a 16:9 frame: the input's own size; a 9:16 photo on the
        640x352 detector: 352x640). Squeezing a portrait photo into a landscape input
        flattens its text out of what the model knows (BENCHMARKS.md, "OCR on real
        photos")."""
        if not self.keep_aspect or self._fixed:
            return self.input_size
        fh, fw = frame_shape[:2]
        if fw <= 0 or fh <= 0:
            return self.input_size
        if abs(math.log((fw / fh) / (self.input_size[0] / self.input_size[1]))) \
                < ASPECT_TOLERANCE:
            return self.input_size          # about the input's shape: the input as set
        area = self.input_size[0] * self.input_size[1]
        width = min(max(round((area * fw / fh) ** 0.5 / RESIZE_STEP), 2),
                    RESIZE_LIMIT[0] // RESIZE_STEP) * RESIZE_STEP
        height = min(max(round(area / width / RESIZE_STEP), 2),
                     RESIZE_LIMIT[1] // RESIZE_STEP) * RESIZE_STEP
        return width, height

    def preprocess(self, frame: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """BGR uint8 frame → [1, H, W, 3] model input (at `size`, default the input's own):
        pixels scaled to [-1, 1], already quantized to the input's int8 when the model's
        input is int8."""
        image = cv2.resize(_as_bgr(frame), size or self.input_size,
                           interpolation=cv2.INTER_AREA)
        if self._table.itemsize == 1:
            image = cv2.LUT(image, self._table.view(np.uint8)).view(self._table.dtype)
        else:
            image = self._table[image]
        return image[np.newaxis]

    def probability_map(self, frame: np.ndarray) -> np.ndarray:
        """The model's [h, w] text-kernel probability map for a frame, at the size
        input_size_for gives it (a graph that cannot run at another size, detector 2.x and
        earlier, squeezes every frame into its input from then on)."""
        size = self.input_size_for(frame.shape)
        if size == self.input_size:
            out = self.model.run(self.preprocess(frame))
        else:
            try:
                out = self.model.run_resized(self.preprocess(frame, size))
            except ModelError:
                self._fixed = True
                return self.probability_map(frame)
        prob = next(iter(out.values()))
        return prob.reshape(prob.shape[1], prob.shape[2])

    def detect(self, frame: np.ndarray) -> list[TextRegion]:
        """Text-line regions in frame coordinates, sorted top to bottom."""
        frame = _as_bgr(frame)
        if min(frame.shape[:2]) < 8:
            raise InputError(f"image too small for detection ({frame.shape[1]}x"
                             f"{frame.shape[0]} px)")
        return self.regions_in(self.probability_map(frame), frame.shape)

    def regions_in(self, prob: np.ndarray, frame_shape,
                   params: DetectorParams | None = None) -> list[TextRegion]:
        """The text regions of a probability map of a frame of this shape (H, W, ...), with
        the detector's post-processing or `params` (a tuning grid)."""
        fh, fw = frame_shape[:2]
        stride = (fw / prob.shape[1], fh / prob.shape[0])
        return regions_from_map(prob, (fw, fh), params or self.params, stride)
