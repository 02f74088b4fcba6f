"""`edgelens bench shadow`: what a challenger costs the champion, per stage.

One run without a challenger (the baseline) and one per stage with a challenger that has the
champion's weights under the next patch version (so agreement should be 100 %: anything less
is a comparison bug), on the same synthetic scene, realtime, in this process. Reported per run:
frame-path and recognition-path p95, deadline misses, shadow pairs, agreement, skipped share and
the challenger's latency per unit (a frame for the detector, a line otherwise).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from device import config as config_mod
from device.config import Config
from device.assembly import build_pipeline, load_stages
from device.metrics import Metrics
from device.modelstore.install import set_active
from device.modelstore.store import ModelStore, default_root
from device.metrics import percentiles
from device.modelstore.pointers import SHADOWED_STAGES, set_shadow
from device.modelstore.shadow import SHADOW_LATENCY
from device.live.sources import SyntheticSource


def clone_version(root: Path, name: str, source: str, version: str) -> None:
    """The same weights under another version number (a challenger that should agree)."""
    shutil.copytree(root / name / source, root / name / version)
    manifest_path = root / name / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = version
    manifest_path.write_text(json.dumps(manifest))


def _store_with_challengers(root: Path) -> tuple[ModelStore, dict[str, str]]:
    """A copy of the model store with each stage's active version cloned as the next patch."""
    source = ModelStore(default_root())
    challengers = {}
    for name in SHADOWED_STAGES:
        shutil.copytree(source.root / name, root / name)
        active = source.active_version(name)
        major, minor, patch = (int(p) for p in active.split("."))
        clone = f"{major}.{minor}.{patch + 100}"
        clone_version(root, name, active, clone)
        challengers[name] = clone
    store = ModelStore(root)
    for name in SHADOWED_STAGES:
        set_active(store, name, source.active_version(name))
    return store, challengers


def _one(store: ModelStore, stage: str | None, version: str | None, frames: int) -> dict:
    for name in SHADOWED_STAGES:
        (store.root / name / "SHADOW").unlink(missing_ok=True)
    if stage is not None:
        set_shadow(store, stage, version)
    cfg = config_mod.build({"models": {"store": str(store.root)}}, config_mod.defaults_schema())
    stages = load_stages(cfg)
    metrics = Metrics()
    pipeline = build_pipeline(cfg, stages, source=SyntheticSource(seed=7, frames=frames,
                                                                  realtime=True),
                              metrics=metrics)
    pipeline.run()
    c = metrics.counter
    pairs, skipped = c("shadow_pairs"), c("shadow_skipped")
    latency = percentiles(metrics.histogram(SHADOW_LATENCY[stage]).samples() if stage else [])
    return {
        "challenger": f"{stage} {version}" if stage else "none",
        "frames": c("frames_captured"),
        "frame_path_p95_ms": percentiles(metrics.histogram("frame_path").samples())["p95"],
        "recognition_path_p95_ms":
            percentiles(metrics.histogram("recognition_path").samples())["p95"],
        "recognition_runs": c("recognition_runs_finished"),
        "recognition_deadline_misses": c("recognition_deadline_misses"),
        "frames_dropped": c("frames_dropped"),
        "pairs": pairs,
        "agreement": round(c("shadow_agree") / pairs, 4) if pairs else None,
        "skipped_share": round(skipped / (pairs + skipped), 4) if pairs + skipped else None,
        "shadow_errors": c("shadow_errors"),
        "challenger_p50_ms": latency["p50"],
        "challenger_p95_ms": latency["p95"],
    }


def run(cfg: Config, json_out: bool = False, quick: bool = False) -> dict:
    frames = 60 if quick else 300
    with tempfile.TemporaryDirectory(prefix="edgelens-shadow-") as folder:
        store, challengers = _store_with_challengers(Path(folder) / "models")
        runs = [_one(store, None, None, frames)]
        runs += [_one(store, stage, version, frames) for stage, version in challengers.items()]
    if not json_out:
        print(f"shadow mode, synthetic scene, {frames} frames at 30 fps per run (challenger = "
              "the champion's weights)")
        print(f"{'challenger':22} {'frame p95':>9} {'recog p95':>9} {'misses':>6} "
              f"{'pairs':>5} {'agree':>6} {'skipped':>7} {'ch p50':>6} {'ch p95':>6}")
        for r in runs:
            agree = "-" if r["agreement"] is None else f"{100 * r['agreement']:.1f}%"
            skipped = "-" if r["skipped_share"] is None else f"{100 * r['skipped_share']:.1f}%"
            print(f"{r['challenger']:22} {r['frame_path_p95_ms']:>9} "
                  f"{r['recognition_path_p95_ms']:>9} {r['recognition_deadline_misses']:>6} "
                  f"{r['pairs']:>5} {agree:>6} {skipped:>7} "
                  f"{r['challenger_p50_ms'] if r['challenger_p50_ms'] is not None else '-':>6} "
                  f"{r['challenger_p95_ms'] if r['challenger_p95_ms'] is not None else '-':>6}")
    return {"frames": frames, "runs": runs}
