"""`edgelens bench ocr [--json] [--peers]`: OCR on real head-worn-camera photos.

Data: the real validation part of `../shared/data` (calibration.real_data: the last 100 ICDAR
2015 training photos at 640x360 and their 508 word crops), never used in training.

Measures, for edgelens at each detector resolution and (with --peers) for PP-OCRv6 tiny
(default detector size and capped at our resolutions), PP-OCRv6 small (default size: a
detector 5.5 times tiny's file, to show how far a bigger model gets) and Tesseract 5, on the same
frames in one interleaved run:

- detection precision / recall / Hmean, two ways. Line IoU: text *lines* (ICDAR words grouped
  into lines by `real_data.group_lines`) matched one-to-one at IoU >= 0.5 — strict, since a
  line mixing legible and `ignore` words is labelled as fragments. Coverage (area, as DetEval
  does): a truth line counts as found when the detections cover at least half of it, a
  detection as right when at least half of it lies on labelled text (legible or `ignore`).
  In both, a detection lying mostly (>= 50 % of its area) on an `ignore` region counts
  neither way;
- why the truth lines without a one-to-one match have none (missed / split / merged into a
  larger box / loose) and how tall they are;
- the ceiling: the share of truth lines at least one of the systems in the run matches (with
  --peers: how far the recall of every model here, taken together, goes);
- noise shown as a translation: the readings of our boxes that lie on no labelled text (after
  the recognizer's confidence threshold), and how many of them the translate stage would show
  as a translation rather than as read (the overlay must not translate noise);
- end-to-end line CER: every ground-truth line gets the text of the detections that lie mostly
  on it (joined left to right); detections on no line count as insertions; case-insensitive,
  whitespace collapsed;
- word accuracy on the real crops (case-insensitive, letters and digits only);
- latency p50/p95 of the whole OCR of a frame and of reading one crop, on 1 and 2 threads;
- peak RSS of a process that loads the system and reads 10 frames (one process per system);
- photos of other shapes (`real_data.shaped_photos`: the same photos cut to 9:16, 3:4 and 4:3
  at their own resolution, as phones take them): line-IoU detection of our default detector
  run at each photo's own shape (`[detector] keep_aspect`, the default) and squeezed into its
  16:9 input.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import resource
import time
from collections import Counter

import cv2
import numpy as np

from calibration import real_data
from calibration.metrics import edit_distance
from device.errors import ModelError
from device.stages.detector import Detector
from device.geometry import match_polygons
from device.metrics import percentiles
from device.modelstore.store import ModelStore
from device.commands.recognize import load_recognizer
from device.stages.recognizer import read_regions

PEER_CAPS = (640, 320)
"""PP-OCRv6 tiny's detector is also run with its longer side capped at these (ours: 640, 320)."""


RESIZED = ((960, 544), (800, 448))
"""Detector inputs larger than the 640x360 frame, run by resizing the default file at load
(`device.stages.detector.artifact_for`): small text gets more pixels. Chosen on the training
photos (one-off, 2026-11-27: line Hmean 0.634 / 0.684 / 0.689 at 640x352 / 800x448 / 960x544
on every third of the 890 training photos); on the validation photos recall rises and
precision falls, Hmean 0.626 / 0.631 / 0.629 (BENCHMARKS.md)."""


def resolutions(config) -> list[tuple[int, int] | None]:
    """Every resolution the configured detector version ships, and RESIZED where the version
    resizes (None: its only file)."""
    det = ModelStore.for_config(config).get(config.detector.model,
                                                      config.detector.version or None)
    sizes = [tuple(int(v) for v in k.split("x")) for k in det.manifest.get("resolutions", {})]
    if not sizes:
        return [None]
    try:
        w, h = RESIZED[-1]
        Detector.for_version(det, dataclasses.replace(config.detector, input_width=w,
                                                      input_height=h), num_threads=1)
    except ModelError:          # a graph with fixed-size layers: its own files only
        return sorted(sizes, reverse=True)
    return sorted(set(sizes) | set(RESIZED), reverse=True)


# --- systems -----------------------------------------------------------------------------------

class Edgelens:
    """Our int8 detector + recognizer through device/runtime.py (LiteRT when installed)."""

    def __init__(self, config, size: tuple[int, int] | None, threads: int):
        store = ModelStore.for_config(config)
        det = store.get(config.detector.model, config.detector.version or None)
        rec = store.get(config.models.recognizer, config.models.recognizer_version or None)
        at = (dataclasses.replace(config.detector, input_width=size[0], input_height=size[1])
              if size else config.detector)
        self.detector = Detector.for_version(det, at,
                                             backend=config.runtime.backend,
                                             num_threads=threads)
        self.recognizer, _ = load_recognizer(config, num_threads=1)   # with its lexicon
        self.min_confidence = config.recognizer.min_confidence
        w, h = self.detector.input_size
        resized = bool(size) and f"{w}x{h}" not in det.manifest.get("resolutions", {})
        self.name = f"edgelens {det.version}/{rec.version} det {w}x{h}" + (
            " (resized)" if resized else "")
        self.versions = {"detector": det.version, "recognizer": rec.version}
        self.split: dict[str, list[float]] = {}

    def ocr(self, frame):
        """Detect and read a frame; where the time went is added to `self.split`."""
        t0 = time.perf_counter()
        prob = self.detector.probability_map(frame)
        t1 = time.perf_counter()
        regions = self.detector.regions_in(prob, frame.shape)
        t2 = time.perf_counter()
        read = read_regions(self.recognizer, frame, regions, self.min_confidence)
        t3 = time.perf_counter()
        for key, value in (("resize_and_model", t1 - t0), ("contours", t2 - t1),
                           ("reading", t3 - t2)):
            self.split.setdefault(key, []).append(value * 1000)
        self.split.setdefault("regions", []).append(len(regions))
        return [(region.polygon, reading.text) for region, reading in read]

    def read(self, crop):
        return self.recognizer.read(crop).text


def _make(kind: str, config, size, threads):
    from calibration import peers
    if kind == "edgelens":
        return Edgelens(config, size, threads)
    if kind in ("paddle", "paddle_small"):
        return peers.PaddleOCR(None if size is None else max(size), threads,
                               "small" if kind == "paddle_small" else "tiny")
    if kind == "tesseract":
        return peers.Tesseract(threads)
    raise ValueError(kind)


# --- scoring -----------------------------------------------------------------------------------

def _area(quad) -> float:
    return abs(float(cv2.contourArea(np.asarray(quad, np.float32))))


def _overlap(a, b) -> float:
    """Intersection area of two convex quads."""
    a = cv2.convexHull(np.asarray(a, np.float32)).reshape(-1, 2)
    b = cv2.convexHull(np.asarray(b, np.float32)).reshape(-1, 2)
    inter, _ = cv2.intersectConvexConvex(a, b)
    return max(float(inter), 0.0)


def _norm_line(text: str) -> str:
    return " ".join(text.upper().split())


def norm_word(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def word_accuracy(read, split_name: str = "val") -> float:
    """Word accuracy % of `read(BGR crop) -> text` on a split's real word crops, scored as
    the benchmark scores them (letters and digits, case-insensitive)."""
    crops = [(cv2.imread(str(p), cv2.IMREAD_COLOR), t) for p, t in real_data.word_crops(split_name)]
    hits = sum(norm_word(read(c)) == norm_word(t) for c, t in crops if c is not None)
    return round(100.0 * hits / len(crops), 2)


def score_frame(found, truth, ignore, shape=(360, 640)) -> dict:
    """Counts for one frame (H, W `shape`): found = [(quad, text)], truth = [(quad, text)],
    ignore = [quad]."""
    kept = []
    for quad, text in found:
        area = max(_area(quad), 1e-6)
        if any(_overlap(quad, q) / area >= 0.5 for q in ignore):
            continue
        kept.append((quad, text))
    matches = match_polygons([q for q, _ in truth], [q for q, _ in kept], 0.5)
    assigned: dict[int, list[int]] = {}
    stray = []
    for j, (quad, _text) in enumerate(kept):
        area = max(_area(quad), 1e-6)
        shares = [_overlap(quad, q) / area for q, _ in truth]
        best = int(np.argmax(shares)) if shares else -1
        if best >= 0 and shares[best] >= 0.5:
            assigned.setdefault(best, []).append(j)
        else:
            stray.append(j)
    edits = chars = 0
    for i, (_quad, text) in enumerate(truth):
        parts = sorted(assigned.get(i, []), key=lambda j: float(np.asarray(kept[j][0])[:, 0].min()))
        got = _norm_line(" ".join(kept[j][1] for j in parts))
        want = _norm_line(text)
        edits += edit_distance(got, want)
        chars += len(want)
    edits += sum(len(_norm_line(kept[j][1])) for j in stray)
    covered, on = _coverage([q for q, _ in kept], [q for q, _ in truth], ignore, shape)
    matched = {i for i, _j, _iou in matches}
    misses = [miss_kind(q, [k for k, _ in kept]) + "@" + height_band(q)
              for i, (q, _text) in enumerate(truth) if i not in matched]
    return {"tp": len(matches), "found": len(kept), "truth": len(truth), "edits": edits,
            "chars": chars, "covered": covered, "on_text": sum(on), "misses": misses,
            "off_text": [text for (_quad, text), hit in zip(kept, on) if not hit and text],
            "matched": sorted(matched),
            "heights": [height_band(q) for q, _text in truth]}


HEIGHT_BANDS = ((0, 8), (8, 12), (12, 16), (16, 24), (24, None))
"""Line height bands (pixels in the 640x360 frame) for the breakdown of unmatched lines."""


def _band_name(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}px" if hi else f"{lo}+px"


def height_band(quad) -> str:
    q = np.asarray(quad, np.float32)
    height = float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    return next(_band_name(lo, hi) for lo, hi in HEIGHT_BANDS if hi is None or height < hi)


def miss_kind(quad, found) -> str:
    """Why a truth line found no one-to-one match: 'missed' (no detection covers a tenth of
    it), 'split' (several detections cover more than half of it together), 'merged' (one
    detection covers most of it but lies mostly elsewhere: the line joined to others), or
    'loose' (overlapping detections, none at IoU 0.5). 'split' is asked first: a line one box
    covers at 90 % and another touches counts as split."""
    area = max(_area(quad), 1e-6)
    shares = [(inter / area, inter / max(_area(f), 1e-6))
              for f in found for inter in (_overlap(quad, f),)]
    touching = [s for s in shares if s[0] > 0.1]
    if not touching:
        return "missed"
    if len(touching) >= 2 and sum(s[0] for s in touching) > 0.5:
        return "split"
    if any(mine > 0.5 and theirs < 0.5 for mine, theirs in touching):
        return "merged"
    return "loose"


def _mask(quads, shape=(360, 640)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for q in quads:
        cv2.fillPoly(mask, [np.round(np.asarray(q, np.float32)).astype(np.int32)], 1)
    return mask


def _coverage(found, truth, ignore, shape=(360, 640)) -> tuple[int, list[bool]]:
    """(truth lines at least half covered by the detections, for each detection whether at
    least half of it lies on labelled text): area coverage, which a line detector and a word
    detector meet alike (ICDAR 2015 labels words; `ignore` text is text too)."""
    found_mask = _mask(found, shape)
    text_mask = _mask(list(truth) + list(ignore), shape)
    covered = sum(1 for q in truth
                  if (m := _mask([q], shape)).sum() and (m & found_mask).sum() >= 0.5 * m.sum())
    on_text = [bool((m := _mask([q], shape)).sum() and (m & text_mask).sum() >= 0.5 * m.sum())
               for q in found]
    return covered, on_text


def summarize(counts: list[dict]) -> dict:
    misses = Counter(m for c in counts for m in c.get("misses", []))
    kinds, bands = Counter(), Counter()
    for key, n in misses.items():
        kind, band = key.split("@")
        kinds[kind] += n
        bands[band] += n
    tp = sum(c["tp"] for c in counts)
    found = sum(c["found"] for c in counts)
    truth = sum(c["truth"] for c in counts)
    p, r = tp / max(found, 1), tp / max(truth, 1)
    cp = sum(c.get("on_text", 0) for c in counts) / max(found, 1)
    cr = sum(c.get("covered", 0) for c in counts) / max(truth, 1)
    return {"precision": round(p, 4), "recall": round(r, 4),
            "hmean": round(2 * p * r / max(p + r, 1e-9), 4),
            "coverage_precision": round(cp, 4), "coverage_recall": round(cr, 4),
            "coverage_hmean": round(2 * cp * cr / max(cp + cr, 1e-9), 4),
            "cer_pct": round(100.0 * sum(c["edits"] for c in counts) /
                             max(sum(c["chars"] for c in counts), 1), 2),
            "lines": truth,
            "unmatched_lines": {"by_kind": dict(kinds.most_common()),
                                "by_height": {_band_name(lo, hi): bands[_band_name(lo, hi)]
                                              for lo, hi in HEIGHT_BANDS}}}


def ceiling(runs: dict[str, list[dict]]) -> dict:
    """How much of the truth any of the systems finds: `runs` maps a system's name to its
    score_frame counts, frame by frame (same frames, same order). A truth line counts when
    at least one system matches it one-to-one. `hmean_at_full_precision` is the Hmean a
    detector would reach that found exactly those lines and nothing else: the most these
    systems' recall together can give."""
    frames = list(zip(*runs.values()))
    truth = sum(counts[0]["truth"] for counts in frames)
    found_by_any, missed_by_all = 0, Counter()
    for counts in frames:
        hits = set().union(*(c["matched"] for c in counts))
        found_by_any += len(hits)
        missed_by_all.update(band for i, band in enumerate(counts[0]["heights"])
                             if i not in hits)
    r = found_by_any / max(truth, 1)
    return {"systems": list(runs), "lines": truth,
            "recall_of_any": round(r, 4),
            "hmean_at_full_precision": round(2 * r / (1 + r), 4) if truth else 0.0,
            "missed_by_all_by_height": {_band_name(lo, hi): missed_by_all[_band_name(lo, hi)]
                                        for lo, hi in HEIGHT_BANDS}}


def noise_shown(config, readings: list[str]) -> dict:
    """What the overlay makes of the readings of boxes on no labelled text (kept by the
    recognizer's confidence threshold): how many the translate stage, as configured but never
    cut short by its budget, shows as a translation instead of as read."""
    from device.stages.translate.translator import Translator
    whole = dataclasses.replace(config, translator=dataclasses.replace(
        config.translator, budget_ms=10_000.0, cache_size=0))
    translator = Translator.from_config(whole, num_threads=1)
    shown = [(text, answer.translation) for text in readings
             if (answer := translator.translate(text)).via != "passthrough"
             and answer.translation.strip().lower() != text.strip().lower()]
    return {"readings": len(readings), "shown_as_translation": len(shown),
            "examples": shown[:6]}


# --- peak memory -------------------------------------------------------------------------------

def _rss_child(kind, config_path, size, frames, queue):
    from device import config as configuration
    cfg = (configuration.defaults() if config_path in (None, "<defaults>")
           else configuration.load(config_path))
    system = _make(kind, cfg, size, 1)
    for frame in frames:
        system.ocr(frame)
    queue.put(_peak_rss_mb())


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM): unlike getrusage's ru_maxrss it does not
    carry the parent's peak across fork + exec."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb(kind, config, size, frames) -> float | None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_rss_child,
                       args=(kind, getattr(config, "origin", None), size, frames[:10], queue))
    proc.start()
    proc.join(600)
    try:
        return round(queue.get(timeout=1), 1)
    except Exception:   # noqa: BLE001 - a child that died reports no number
        return None


# --- the run -----------------------------------------------------------------------------------

def run(config, json_out: bool = False, quick: bool = False, peers: bool = False) -> dict:
    if not real_data.available():
        raise SystemExit(f"edgelens bench ocr: the real validation data is not there "
                         f"({real_data.data_root()}); set EDGELENS_DATA to the shared data folder")
    frames = real_data.labelled_frames("val")
    crops = [(cv2.imread(str(p), cv2.IMREAD_COLOR), t) for p, t in real_data.word_crops("val")]
    crops = [(c, t) for c, t in crops if c is not None]
    if quick:
        frames, crops = frames[:20], crops[:100]
    systems = [("edgelens", size) for size in resolutions(config)]
    if peers:
        systems += [("paddle", None)] + [("paddle", (cap, cap)) for cap in PEER_CAPS]
        systems += [("paddle_small", None)]   # how far a bigger model gets
        systems += [("tesseract", None)]
    rows = []
    for kind, size in systems:
        try:
            made = {t: _make(kind, config, size, t) for t in (1, 2)}
        except Exception as exc:   # noqa: BLE001 - a peer that cannot load is reported
            rows.append({"system": f"{kind} {size}", "error": str(exc)})
            continue
        rows.append({"kind": kind, "size": size, "systems": made, "counts": [],
                     "frame_ms": {1: [], 2: []}, "crop_ms": [], "words": 0})
    live = [r for r in rows if "systems" in r]
    # interleaved: every frame goes through every system before the next frame
    for frame, truth, ignore in frames:
        for row in live:
            for threads in (1, 2):
                t0 = time.perf_counter()
                try:
                    found = row["systems"][threads].ocr(frame)
                except Exception:   # noqa: BLE001 - a peer's failure on a frame is counted
                    found = []
                    row["errors"] = row.get("errors", 0) + 1
                row["frame_ms"][threads].append((time.perf_counter() - t0) * 1000)
            row["counts"].append(score_frame(found, truth, ignore))
    for crop, text in crops:
        for row in live:
            t0 = time.perf_counter()
            try:
                got = row["systems"][1].read(crop)
            except Exception:   # noqa: BLE001 - counted as a miss and an error
                got, row["errors"] = "", row.get("errors", 0) + 1
            row["crop_ms"].append((time.perf_counter() - t0) * 1000)
            row["words"] += norm_word(got) == norm_word(text)
    results = []
    for row in rows:
        if "systems" not in row:
            results.append(row)
            continue
        name = row["systems"][1].name
        entry = {"system": name, **summarize(row["counts"]),
                 "word_accuracy_pct": round(100.0 * row["words"] / max(len(crops), 1), 2),
                 "words": len(crops),
                 "frame_ms_1t": percentiles(row["frame_ms"][1], digits=2),
                 "frame_ms_2t": percentiles(row["frame_ms"][2], digits=2),
                 "crop_ms_1t": percentiles(row["crop_ms"], digits=2),
                 **({"split_1t_p50": {k: round(float(np.median(v)), 2) for k, v in
                                      row["systems"][1].split.items()}}
                    if getattr(row["systems"][1], "split", None) else {}),
                 "errors": row.get("errors", 0)}
        if row["kind"] == "edgelens":
            entry["noise"] = noise_shown(config, [t for c in row["counts"] for t in c["off_text"]])
        if not quick:
            entry["peak_rss_mb"] = peak_rss_mb(row["kind"], config, row["size"],
                                               [f for f, _, _ in frames])
        results.append(entry)
    out = {"data": "real validation: last 100 ICDAR 2015 training photos (640x360) and their "
                   f"{len(crops)} word crops (CC BY 4.0); never trained on",
           "frames": len(frames), "results": results,
           "ceiling": ceiling({r["systems"][1].name: r["counts"] for r in live}),
           "shapes": photo_shapes(config, quick)}
    if not json_out:
        _print(out)
    return out


SHAPES = ((9, 16), (3, 4), (4, 3))
"""Photo shapes other than the frame's 16:9 (portrait phone, portrait and landscape 4:3)."""


def photo_shapes(config, quick: bool = False) -> list[dict]:
    """Line-IoU detection on the validation photos cut to SHAPES, our default detector at each
    photo's own shape and squeezed into its input (detection only: these are not frames)."""
    store = ModelStore.for_config(config)
    version = store.get(config.detector.model, config.detector.version or None)
    detectors = {keep: Detector.for_version(
        version, dataclasses.replace(config.detector, keep_aspect=keep),
        backend=config.runtime.backend, num_threads=2) for keep in (True, False)}
    rows = []
    for aspect in SHAPES:
        photos = real_data.shaped_photos("val", aspect)[:20 if quick else None]
        for keep, detector in detectors.items():
            counts, ms = [], []
            for image, truth, ignore in photos:
                t0 = time.perf_counter()
                regions = detector.detect(image)
                ms.append((time.perf_counter() - t0) * 1000)
                counts.append(score_frame([(r.polygon, "") for r in regions], truth, ignore,
                                          shape=image.shape[:2]))
            w, h = detector.input_size_for(photos[0][0].shape)
            found = summarize(counts)
            rows.append({"shape": f"{aspect[0]}:{aspect[1]}", "keep_aspect": keep,
                         "photo": f"{photos[0][0].shape[1]}x{photos[0][0].shape[0]}",
                         "input": f"{w}x{h}", "lines": found["lines"],
                         **{k: found[k] for k in ("precision", "recall", "hmean")},
                         "detect_ms_2t": percentiles(ms, digits=2)})
    return rows


def _print(out: dict) -> None:
    print(out["data"])
    head = (f"{'system':38} {'P':>6} {'R':>6} {'H':>6} {'covH':>6} {'CER%':>6} {'word%':>6} "
            f"{'fr1 p50':>8} {'p95':>7} {'fr2 p50':>8} {'crop p50':>8} {'RSS MB':>7}")
    print(head)
    for r in out["results"]:
        if "error" in r:
            print(f"{r['system']:38} unavailable: {r['error']}")
            continue
        print(f"{r['system']:38} {r['precision']:6.3f} {r['recall']:6.3f} {r['hmean']:6.3f} "
              f"{r['coverage_hmean']:6.3f} "
              f"{r['cer_pct']:6.1f} {r['word_accuracy_pct']:6.1f} "
              f"{r['frame_ms_1t']['p50']:8.1f} {r['frame_ms_1t']['p95']:7.1f} "
              f"{r['frame_ms_2t']['p50']:8.1f} {r['crop_ms_1t']['p50']:8.2f} "
              f"{r.get('peak_rss_mb') or '-':>7}")
        if r.get("split_1t_p50"):
            split = dict(r["split_1t_p50"])
            regions = split.pop("regions", None)
            print(f"{'':38} where the time goes (1 thread, p50 ms): "
                  + ", ".join(f"{k} {v}" for k, v in split.items())
                  + f"; regions a frame (p50): {regions}")
        if r.get("noise"):
            print(f"{'':38} readings of boxes on no labelled text: {r['noise']['readings']}, "
                  f"shown as a translation: {r['noise']['shown_as_translation']}")
        lines = r.get("unmatched_lines")
        if lines and sum(lines["by_kind"].values()):
            print(f"{'':38} unmatched truth lines: "
                  + ", ".join(f"{k} {n}" for k, n in lines["by_kind"].items())
                  + "; by height: " + ", ".join(f"{k} {n}" for k, n in lines["by_height"].items()))
    top = out.get("ceiling")
    if top and len(top["systems"]) > 1:
        print(f"truth lines some system above matches: {top['recall_of_any']:.3f} of "
              f"{top['lines']} (a detector finding exactly these: Hmean "
              f"{top['hmean_at_full_precision']:.3f}); matched by none, by height: "
              + ", ".join(f"{k} {n}" for k, n in top["missed_by_all_by_height"].items()))
    print("photos of other shapes (the validation photos cut to them; detection, line IoU):")
    for r in out.get("shapes", []):
        how = "own shape" if r["keep_aspect"] else "squeezed"
        print(f"  {r['shape']:5} {r['photo']:9} {how:9} at {r['input']:8} P {r['precision']:.3f} "
              f"R {r['recall']:.3f} H {r['hmean']:.3f}  detect p50 "
              f"{r['detect_ms_2t']['p50']:.1f} ms (2 threads)")


def markdown(out: dict) -> str:
    """The results as a Markdown table (BENCHMARKS.md and the model cards)."""
    rows = ["| system | line IoU P / R / Hmean | coverage P / R / Hmean | line CER % | "
            "word acc % | frame p50 / p95 ms (1 thread) | frame p50 ms (2 threads) | "
            "crop p50 ms | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        if "error" in r:
            rows.append(f"| {r['system']} | unavailable: {r['error']} ||||||||")
            continue
        rows.append(
            f"| {r['system']} | {r['precision']:.3f} / {r['recall']:.3f} / {r['hmean']:.3f} | "
            f"{r['coverage_precision']:.3f} / {r['coverage_recall']:.3f} / "
            f"{r['coverage_hmean']:.3f} | "
            f"{r['cer_pct']:.1f} | {r['word_accuracy_pct']:.1f} | "
            f"{r['frame_ms_1t']['p50']:.1f} / {r['frame_ms_1t']['p95']:.1f} | "
            f"{r['frame_ms_2t']['p50']:.1f} | {r['crop_ms_1t']['p50']:.2f} | "
            f"{r.get('peak_rss_mb') or '-'} |")
    top = out.get("ceiling")
    if top and len(top["systems"]) > 1:
        rows += ["", f"Truth lines at least one system above matches one-to-one: "
                     f"{top['recall_of_any']:.3f} of {top['lines']} (a detector that found "
                     f"exactly these would reach line Hmean {top['hmean_at_full_precision']:.3f})."]
    if out.get("shapes"):
        rows += ["", "| photo shape | photo px | detector runs | at | line IoU P / R / Hmean | "
                 "detect p50 ms (2 threads) |", "|---|---|---|---|---|---|"]
        rows += [f"| {r['shape']} | {r['photo']} | "
                 f"{'at its own shape' if r['keep_aspect'] else 'squeezed'} | {r['input']} | "
                 f"{r['precision']:.3f} / {r['recall']:.3f} / {r['hmean']:.3f} | "
                 f"{r['detect_ms_2t']['p50']:.1f} |" for r in out["shapes"]]
    return "\n".join(rows)
