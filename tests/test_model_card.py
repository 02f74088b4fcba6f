"""The one model-card generator (`calibration.model_card`): its markdown tables and sections,
and the cards the packaging scripts build from it against the committed cards."""

import json
from pathlib import Path

import pytest

from calibration import model_card as cards
from calibration import package_line_detector, package_translator2
from calibration import package_recognizer as export_recognizer
from device.modelstore.store import CARD

ROOT = Path(__file__).resolve().parent.parent

GENERATORS = [ROOT / "calibration" / "package_detector.py",
              ROOT / "calibration" / "package_line_detector.py",
              ROOT / "calibration" / "package_translator2.py",
              ROOT / "calibration" / "package_translator1.py",
              ROOT / "calibration" / "package_recognizer.py"]


def test_table_renders_header_rule_and_rows():
    text = cards.table(("model", "p50 ms", "p95 ms"), [("int8", "1.50", "2.25"), ("fp32", 3, 4.5)])
    assert text.splitlines() == ["| model | p50 ms | p95 ms |",
                                 "|---|---|---|",
                                 "| int8 | 1.50 | 2.25 |",
                                 "| fp32 | 3 | 4.5 |"]


def test_an_empty_cell_and_an_empty_table():
    assert cards.row(("a", "")) == "| a |  |"
    assert cards.table(("a", "b"), []) == "| a | b |\n|---|---|"


def test_history_table():
    epochs = [{"epoch": 1, "loss": 0.51234, "seconds": 30, "elapsed_s": 31}]
    assert cards.history(epochs).splitlines()[-1] == "| 1 | 0.5123 | 30 |"
    assert cards.history(epochs, loss="CTC loss", digits=3, elapsed=("elapsed s", "elapsed_s")) \
        == "| epoch | CTC loss | elapsed s |\n|---|---|---|\n| 1 | 0.512 | 31 |"


def test_latency_cells():
    timing = {"p50": 2.697, "p95": 7.552}
    assert cards.p50_p95(timing) == ("2.70", "7.55")
    assert cards.p50_p95(timing, 3) == ("2.697", "7.552")
    assert cards.p50_p95(timing, None) == ("2.697", "7.552")


def test_title_items_and_sizes():
    assert cards.title("recognizer", "2.0.0") == "# Model card: recognizer 2.0.0"
    assert cards.title("detector", "1.0.0", "text-line detector (int8)") == \
        "# detector 1.0.0: text-line detector (int8)"
    assert cards.licenses({"Tatoeba": "CC BY 2.0 FR", "fonts": "OFL"}) == \
        "### Data licenses\n- Tatoeba: CC BY 2.0 FR\n- fonts: OFL"
    entries = [{"file": "a.tflite", "size_bytes": 2048}, {"file": "b.model", "size_bytes": 512},
               {"file": "a.tflite", "size_bytes": 2048}]
    assert cards.file_sizes(entries) == "`a.tflite` 2 KiB, `b.model` 0 KiB"


def test_use_and_golden_sections():
    manifest = {"intended_use": "Reading signs.", "limitations": "Latin script only."}
    assert cards.use(manifest) == ("## Use\n- **Intended use:** Reading signs.\n"
                                   "- **Limitations:** Latin script only.")
    assert cards.use(manifest, ("Input", "a crop"), limitations=False) == \
        "## Use\n- **Intended use:** Reading signs.\n- **Input:** a crop"
    cases = [{"input": "golden/a.png", "expected": "EXIT", "ground_truth": "golden/a.json"}]
    assert cards.golden(cases, intro="Reads these:") == \
        "## Golden self-test\nReads these:\n- `golden/a.png` → `EXIT`"
    assert cards.golden(cases, case="- {input} → {expected}") == \
        "## Golden self-test\n- golden/a.png → EXIT"


def test_write_puts_the_card_where_the_store_reads_it(tmp_path):
    path = cards.write(tmp_path, "# Model card: x 1.0.0\n\nÜbersetzung → translation\n")
    assert path == tmp_path / CARD
    assert path.read_text(encoding="utf-8").endswith("→ translation\n")


@pytest.mark.parametrize("model, render", [
    ("detector/2.0.0", package_line_detector.model_card),
    ("detector/3.0.0", package_line_detector.model_card),
    ("detector/3.0.1", package_line_detector.model_card),
    ("detector/3.0.2", package_line_detector.model_card),
    ("detector/3.0.3", package_line_detector.model_card),
    ("recognizer/1.0.0", export_recognizer.model_card),
    ("recognizer/2.0.0", export_recognizer.model_card),
    ("recognizer/3.0.0", export_recognizer.model_card),
    ("recognizer/3.0.1", export_recognizer.model_card),
    ("translator/2.0.0", package_translator2.card),
    ("translator/2.1.0", package_translator2.card),
    ("translator/3.0.0", package_translator2.card),
    ("translator/3.1.0", package_translator2.card),
    ("translator/3.2.0", package_translator2.card),
    ("translator/3.3.0", package_translator2.card),
    ("translator/3.4.0", package_translator2.card),
    ("translator/3.5.0", package_translator2.card),
    ("translator/3.6.0", package_translator2.card),
    ("translator/3.7.0", package_translator2.card),
    ("translator/3.8.0", package_translator2.card),
])
def test_a_card_rendered_from_its_manifest_has_the_committed_cards_tables(model, render):
    """The committed cards were edited by hand after packaging (module paths, the OCR
    comparison appended), so the prose may differ; every table line must not."""
    directory = ROOT / "models" / model
    card = render(json.loads((directory / "manifest.json").read_text(encoding="utf-8")))
    committed = set((directory / CARD).read_text(encoding="utf-8").splitlines())
    rows = [line for line in card.splitlines() if line.startswith("|")]
    assert rows and [line for line in rows if line not in committed] == []


@pytest.mark.parametrize("script", GENERATORS, ids=lambda p: p.name)
def test_every_card_generator_renders_its_tables_through_the_one_module(script):
    source = script.read_text(encoding="utf-8")
    assert "model_card as cards" in source
    assert "|---|" not in source and "MODEL_CARD.md\").write_text" not in source
