"""Human-readable tables of a pipeline summary."""

from __future__ import annotations

STAGES = ("frame_path", "capture_to_display", "stage.detect", "stage.recognize",
          "stage.translate", "recognition_path", "new_recognition")


def format_summary(summary: dict) -> str:
    f, r, m = summary["frames"], summary["recognition"], summary["misses"]
    lines = [
        f"frames      captured {f['captured']}  displayed {f['displayed']}  "
        f"dropped {f['dropped']}",
        f"recognition started {r['started']}  finished {r['finished']}  "
        f"discarded late {r['discarded_late']}  stale {r['discarded_stale']}  "
        f"degraded {r['degraded']}  errors {r['errors']}",
        f"misses      frame path {m['frame_path']} ({m['frame_path_rate']:.2%})  "
        f"recognition path {m['recognition_path']} ({m['recognition_path_rate']:.2%})",
        f"first overlay after {summary['first_overlay_s']} s",
        "",
        f"{'latency (ms)':22s} {'count':>7s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}",
    ]
    latency = summary["latency_ms"]
    for name in STAGES:
        if name in latency:
            h = latency[name]
            lines.append(f"{name:22s} {h['count']:7d} {h['p50']:8.2f} {h['p95']:8.2f} "
                         f"{h['p99']:8.2f} {h['max']:8.2f}")
    return "\n".join(lines)
