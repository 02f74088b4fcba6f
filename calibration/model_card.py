"""The model cards (MODEL_CARD.md) of the store: what every card shares, rendered one way.

A packaging module (calibration/package_detector.py, package_line_detector.py,
package_recognizer.py, package_translator1.py, package_translator2.py) keeps the
prose about its own model and builds its card from these parts: the title, the markdown tables
(accuracy, latency, training history), the bold-labelled items (Use, Training), the data
licenses, the golden self-test and the file sizes; `publish` writes the manifest and the card
beside it (`write`: the card alone).
The numbers come from the manifest (or the run's report) the script writes in the same run, so
a card never says other numbers than its manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from device.modelstore.store import CARD

GOLDEN_CODE = "- `{input}` → `{expected}`"
"""A golden case with input and expected text in code spans (the default)."""


def title(name: str, version: str, what: str = "") -> str:
    """`# Model card: recognizer 2.0.0`; the 1.x cards' form `# detector 1.0.0: <what>` when
    `what` is given."""
    return f"# {name} {version}: {what}" if what else f"# Model card: {name} {version}"


def row(cells: Iterable[Any]) -> str:
    """One markdown table line; the caller formats the cells (digits differ by table)."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    """A markdown table: the header line, its rule and one line per row."""
    return "\n".join([row(header), "|" + "---|" * len(header), *(row(r) for r in rows)])


def p50_p95(timing: Mapping[str, Any], digits: int | None = 2) -> tuple[str, str]:
    """The p50 and p95 cells of a latency row, at `digits` (None: as measured)."""
    if digits is None:
        return str(timing["p50"]), str(timing["p95"])
    return f"{timing['p50']:.{digits}f}", f"{timing['p95']:.{digits}f}"


def history(epochs: Iterable[Mapping[str, Any]], loss: str = "loss", digits: int = 4,
            elapsed: tuple[str, str] = ("seconds", "seconds")) -> str:
    """The Training section's table of the run's history: epoch, `loss` at `digits` and the
    time column `elapsed` (its header, the key in a history record)."""
    header, key = elapsed
    return table(("epoch", loss, header),
                 ((h["epoch"], f"{h['loss']:.{digits}f}", h[key]) for h in epochs))


def labelled(label: str, text: Any) -> str:
    """A bold-labelled item: `- **Intended use:** …`."""
    return f"- **{label}:** {text}"


def items(mapping: Mapping[str, Any]) -> str:
    """`- key: value` lines (data sources, licenses)."""
    return "\n".join(f"- {key}: {value}" for key, value in mapping.items())


def use(manifest: Mapping[str, Any], *more: tuple[str, str], limitations: bool = True) -> str:
    """The Use section: the intended use, what else a user must know (`more`: label, text),
    then the limitations unless the card gives them a section of their own."""
    lines = ["## Use", labelled("Intended use", manifest["intended_use"])]
    lines += [labelled(label, text) for label, text in more]
    if limitations:
        lines.append(labelled("Limitations", manifest["limitations"]))
    return "\n".join(lines)


def licenses(licenses: Mapping[str, str], heading: str = "Data licenses") -> str:
    """The licenses of what the model was trained on, one item per source."""
    return f"### {heading}\n{items(licenses)}"


def golden(cases: Iterable[Mapping[str, Any]], intro: str = "",
           heading: str = "Golden self-test", case: str = GOLDEN_CODE) -> str:
    """The golden self-test section: `intro` says what `edgelens models verify` runs and
    expects; then one `case` line (a format of the case's keys) per case."""
    return "\n".join([f"## {heading}", *([intro] if intro else []),
                      *(case.format(**c) for c in cases)])


def file_sizes(entries: Iterable[Mapping[str, Any]]) -> str:
    """`` `detector.tflite` 113 KiB, … `` for the manifest's file entries, each file once."""
    sizes = {e["file"]: e["size_bytes"] for e in entries}
    return ", ".join(f"`{name}` {size / 1024:.0f} KiB" for name, size in sizes.items())


def publish(directory: Path, manifest: dict, card_text: str, indent: int = 2) -> None:
    """A packaged version's manifest.json and its card, side by side in the store."""
    (Path(directory) / "manifest.json").write_text(
        json.dumps(manifest, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    write(directory, card_text)


def write(directory: Path, text: str) -> Path:
    """The card beside the manifest, as the model store reads it."""
    path = Path(directory) / CARD
    path.write_text(text, encoding="utf-8")
    return path
