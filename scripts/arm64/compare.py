"""OCR and translation outputs of this machine, and whether two machines' outputs are the same.

    python scripts/arm64/compare.py outputs [IMAGE...] > out.json   # default config, backend auto
    python scripts/arm64/compare.py compare x86.json arm.json       # exit 1 when they differ
    python scripts/arm64/compare.py verify verify.json              # `models verify --json`

Outputs: `edgelens ocr --all` on the detector's golden scenes (and any IMAGE given), and
`edgelens translate` of every TEXT_STEP-th German text of tests/data/sign_validation.tsv (62 of
310: the whole set takes about 20 minutes per core under emulation) with no time budget (the
answer, not the speed, is compared).

"The same" (aarch64 is not bit-identical to x86: OpenCV's resizes and the int8 kernels take other
code paths, so a crop differs by a few pixel values and the recognizer's least sure characters
can flip; measured: docs in BENCHMARKS.md, "aarch64 under emulation"):
- models verify: every golden self-test passes (exact text), but for the lines listed with
  their reason in scripts/arm64/known-differences.txt.
- translation: the same English text and the same `via` for every input; model confidences
  within CONFIDENCE_TOLERANCE.
- OCR: a line counts when read with at least `[recognizer] min_confidence` (what a user is
  shown). Every counted line of one side has a line on the other side at the same place (box
  IoU >= MATCH_IOU, any confidence): the same lines are found. Their texts may differ in a
  few characters: over all counted lines, the character edits from the x86 reading to the
  aarch64 one are at most MAX_CHARACTER_DISAGREEMENT of the characters (the recognizer's own
  character error rate on unseen fonts is 2.8 %), and the mean confidence difference at most
  CONFIDENCE_TOLERANCE. Every line that differs is listed.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CONFIDENCE_TOLERANCE = 0.05
MATCH_IOU = 0.5
MAX_CHARACTER_DISAGREEMENT = 0.05
TEXT_STEP = 5


def _images(extra: list[str]) -> list[Path]:
    golden = sorted((ROOT / "models" / "detector").glob("*/golden/*.png"))
    return golden + [Path(p) for p in extra]


def _texts() -> list[str]:
    lines = (ROOT / "tests" / "data" / "sign_validation.tsv").read_text(encoding="utf-8")
    return [line.split("\t")[0] for line in lines.splitlines()
            if line.strip() and not line.startswith("#")][::TEXT_STEP]


def outputs(extra: list[str]) -> dict:
    from device import config
    from device.commands.ocr import _recognizer, load_detector, ocr_image
    from device.commands._per_file import load_image
    from device.runtime import resolve_backend
    from device.stages.translate.translator import Translator

    cfg = config.defaults()
    detector, _ = load_detector(cfg)
    recognizer = _recognizer(cfg, None)
    ocr = {}
    for path in _images(extra):
        result = ocr_image(detector, recognizer, load_image(str(path)), 0.0)
        key = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
        ocr[key] = result["lines"]
    translator = Translator.from_config(cfg)
    translator.settings = replace(translator.settings, budget_ms=math.inf)
    translations = {text: translator.translate(text).as_dict() for text in _texts()}
    return {"backend": resolve_backend(cfg.runtime.backend),
            "min_confidence": cfg.recognizer.min_confidence,
            "ocr": ocr, "translations": translations}


def _box(polygon) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    return min(xs), min(ys), max(xs), max(ys)


def _iou(a, b) -> float:
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = _box(a), _box(b)
    w, h = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    inter = max(0.0, w) * max(0.0, h)
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def _edits(a: str, b: str) -> int:
    """Levenshtein distance."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _pairs(ours: list[dict], theirs: list[dict], threshold: float):
    """(line, its match on the other side or None) for every counted line of `ours`."""
    for line in ours:
        if (line["confidence"] or 0.0) < threshold:
            continue
        near = [(_iou(line["polygon"], o["polygon"]), o) for o in theirs]
        best = max(near, key=lambda pair: pair[0], default=(0.0, None))
        yield line, best[1] if best[0] >= MATCH_IOU else None


def compare(a: dict, b: dict) -> tuple[list[str], list[str], dict]:
    """(problems, differing lines, totals): empty problems means the same."""
    problems, differing = [], []
    threshold = a["min_confidence"]
    chars = edits = lines = exact = 0
    confidence_diff = 0.0
    for image in sorted(set(a["ocr"]) | set(b["ocr"])):
        if image not in a["ocr"] or image not in b["ocr"]:
            problems.append(f"ocr {image}: only on one side")
            continue
        x86, arm = a["ocr"][image], b["ocr"][image]
        seen = set()
        for side, ours, theirs in (("x86", x86, arm), ("arm", arm, x86)):
            for line, match in _pairs(ours, theirs, threshold):
                if match is None:
                    problems.append(f"ocr {image}: {side} {line['text']!r} "
                                    f"{line['confidence']:.3f} was not found on the other side")
                    continue
                first, second = (line, match) if side == "x86" else (match, line)
                key = (id(first), id(second))
                if key in seen:
                    continue
                seen.add(key)
                lines += 1
                chars += max(len(first["text"] or ""), 1)
                edits += _edits(first["text"] or "", second["text"] or "")
                exact += first["text"] == second["text"]
                confidence_diff += abs((first["confidence"] or 0) - (second["confidence"] or 0))
                if first["text"] != second["text"]:
                    differing.append(f"ocr {image}: {first['text']!r} {first['confidence']:.3f}"
                                     f" (x86) vs {second['text']!r} "
                                     f"{second['confidence']:.3f} (arm)")
    totals = {"lines": lines, "exact": exact, "chars": chars, "edits": edits,
              "disagreement": edits / chars if chars else 0.0,
              "confidence_diff": confidence_diff / lines if lines else 0.0}
    if totals["disagreement"] > MAX_CHARACTER_DISAGREEMENT:
        problems.append(f"ocr: {totals['disagreement']:.1%} of the characters differ (at most "
                        f"{MAX_CHARACTER_DISAGREEMENT:.0%})")
    if totals["confidence_diff"] > CONFIDENCE_TOLERANCE:
        problems.append(f"ocr: confidences differ by {totals['confidence_diff']:.3f} on "
                        f"average (at most {CONFIDENCE_TOLERANCE})")
    for text in sorted(set(a["translations"]) | set(b["translations"])):
        x, y = a["translations"].get(text), b["translations"].get(text)
        if x is None or y is None:
            problems.append(f"translate {text!r}: only on one side")
        elif (x["translation"], x["via"]) != (y["translation"], y["via"]) or abs(
                x["confidence"] - y["confidence"]) > CONFIDENCE_TOLERANCE:
            problems.append(f"translate {text!r}: {x['translation']!r} ({x['via']}, "
                            f"{x['confidence']:.3f}) vs {y['translation']!r} ({y['via']}, "
                            f"{y['confidence']:.3f})")
    return problems, differing, totals


def unexpected_verify_problems(reports: list[dict], known: set[str]) -> list[str]:
    """`edgelens models verify --json` problems not in scripts/arm64/known-differences.txt."""
    problems = [f"{r['name']} {r['version']}: {p}" for r in reports for p in r["problems"]]
    return [p for p in problems if p not in known] + (["no model verified"] if not reports else [])


def _known() -> set[str]:
    path = Path(__file__).with_name("known-differences.txt")
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")}


def _counted(data: dict) -> int:
    return sum(1 for lines in data["ocr"].values() for line in lines
               if (line["confidence"] or 0.0) >= data["min_confidence"])


def main(argv: list[str]) -> int:
    if argv[:1] == ["outputs"]:
        import logging
        logging.basicConfig(level=logging.WARNING)
        json.dump(outputs(argv[1:]), sys.stdout, ensure_ascii=False, indent=1)
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in argv[1:])
        problems, differing, totals = compare(a, b)
        for line in differing:
            print(f"differs: {line}")
        for problem in problems:
            print(f"NOT THE SAME: {problem}")
        print(f"compared {len(a['ocr'])} images ({_counted(a)} lines shown on x86, "
              f"{_counted(b)} on arm; {totals['exact']} of {totals['lines']} matched lines "
              f"read alike, {totals['disagreement']:.1%} of the characters differ, confidences "
              f"{totals['confidence_diff']:.3f} apart on average) and "
              f"{len(a['translations'])} translations: {len(problems)} problem(s)")
        return 1 if problems else 0
    if argv[:1] == ["verify"] and len(argv) == 2:
        reports = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        problems = unexpected_verify_problems(reports, _known())
        for r in reports:
            print(f"{r['name']} {r['version']}: {len(r['problems'])} problem(s); "
                  + ", ".join(f"{b}: {v}" for b, v in r["backends"].items())[:300])
        for problem in problems:
            print(f"unexpected: {problem}")
        print(f"models verify: {len(reports)} versions, {len(problems)} unexpected problem(s)")
        return 1 if problems else 0
    print("usage: compare.py outputs [IMAGE...] | compare A.json B.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
