import pytest

from device import config
from device.config_schema import SCHEMA
from device.errors import ConfigError


def test_defaults_cover_every_section_and_key():
    cfg = config.defaults()
    for section in SCHEMA:
        values = cfg.sections[section.name].as_dict()
        assert set(values) == {k.name for k in section.keys}


def test_every_key_is_described_and_its_default_validates():
    for section in SCHEMA:
        assert section.description
        for key in section.keys:
            assert len(key.description) > 10, f"[{section.name}] {key.name} lacks a description"
            config.build({section.name: {key.name: key.default}}, SCHEMA)


def test_values_from_file_override_defaults(tmp_path):
    path = tmp_path / "edgelens.toml"
    path.write_text('[runtime]\nbackend = "tflite"\nnum_threads = 1\n')
    cfg = config.load(path)
    assert (cfg.runtime.backend, cfg.runtime.num_threads) == ("tflite", 1)
    assert cfg.logging.level == "INFO"


@pytest.mark.parametrize("text, message", [
    ("[runtime]\nthreads = 2\n", "unknown key [runtime] threads"),
    ("[runtme]\n", "unknown section [runtme]"),
    ('[runtime]\nnum_threads = "two"\n', "[runtime] num_threads: expected an integer, got 'two'"),
    ("[runtime]\nnum_threads = 0\n", "[runtime] num_threads: expected a value >= 1, got 0"),
    ('[runtime]\nbackend = "gpu"\n', "[runtime] backend: expected one of 'auto', 'litert', "
                                     "'tflite', got 'gpu'"),
    ("[runtime]\nnum_threads = true\n", "expected an integer, got True"),
    ("[runtime\n", "not valid TOML"),
    # NaN and infinity pass every < / > comparison: refused as not finite
    ("[sync]\nidle_poll_s = nan\n", "[sync] idle_poll_s: expected a finite number, got nan"),
    ("[fleet]\nstatus_window_s = inf\n", "[fleet] status_window_s: expected a finite number"),
    ("[fleet]\nsession_expiry_s = 4294967296\n", "expected a value <= 4294967295"),
    ('[mqtt]\ntopic_prefix = "#"\n', "[mqtt] topic_prefix: '#' (str) is not allowed here"),
    ('[mqtt]\ntopic_prefix = "a/b"\n', "is not allowed here"),
    ('[fleet]\nshare_group = "+"\n', "[fleet] share_group: '+' (str) is not allowed here"),
    ('[mqtt]\ntopic_prefix = "edgelens\\n"\n', "is not allowed here"),
])
def test_bad_config_names_key_expected_and_given(text, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_show_output_round_trips():
    cfg = config.defaults()
    again = config.parse_text(config.to_toml(cfg))
    assert again.as_dict() == cfg.as_dict()


def test_the_shipped_example_config_is_valid_and_complete():
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "deploy" / "edgelens.example.toml"
    cfg = config.load(path)
    text = path.read_text()
    for section in SCHEMA:
        assert f"[{section.name}]" in text
        for key in section.keys:
            assert f"\n{key.name} = " in text, f"[{section.name}] {key.name} missing"
    assert cfg.as_dict() == config.defaults().as_dict()


def test_config_show_never_prints_the_password(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\npassword = "hunter2-secret"\n')
    for extra in ([], ["--json"]):
        out = subprocess.run([sys.executable, "-m", "device", "--config", str(path), "config",
                              "show", *extra], capture_output=True, text=True, check=True)
        assert "hunter2-secret" not in out.stdout
        assert config.REDACTED in out.stdout


def test_the_typed_config_is_generated_from_the_schema_and_current():
    """device/config_types.py is what `python -m device.config_codegen` writes from the
    schema; every section is a frozen dataclass whose fields hold values of the key's type."""
    import dataclasses

    from device import config_codegen
    from device.config_types import SECTION_TYPES
    assert config_codegen.main(["--check"]) == 0, "run python -m device.config_codegen"
    cfg = config.defaults()
    assert [s.name for s in SCHEMA] == list(SECTION_TYPES)
    for section in SCHEMA:
        values = getattr(cfg, section.name)
        assert type(values) is SECTION_TYPES[section.name]
        assert [f.name for f in dataclasses.fields(values)] == [k.name for k in section.keys]
        for key in section.keys:
            assert isinstance(getattr(values, key.name), key.type), (section.name, key.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.runtime.num_threads = 4
    with pytest.raises(AttributeError):
        cfg.runtime.no_such_key


def test_renamed_keys_are_accepted_with_a_warning_and_land_in_their_new_place():
    with pytest.warns(FutureWarning, match=r"\[pipeline\] min_confidence is now "
                                           r"\[recognizer\] min_confidence"):
        cfg = config.build({"pipeline": {"min_confidence": 0.7, "hud": False}}, SCHEMA, "old.toml")
    assert cfg.recognizer.min_confidence == 0.7 and cfg.pipeline.hud is False
    with pytest.warns(FutureWarning, match=r"translate_budget_ms is now \[translator\] budget_ms"):
        cfg = config.build({"pipeline": {"translate_budget_ms": 55.0}}, SCHEMA)
    assert cfg.translator.budget_ms == 55.0
    with pytest.warns(FutureWarning, match=r"0.9 is ignored: \[recognizer\] min_confidence = "
                                           r"0.6 is used"):      # the new name wins
        cfg = config.build({"translator": {"min_ocr_confidence": 0.9},
                            "recognizer": {"min_confidence": 0.6}}, SCHEMA)
    assert cfg.recognizer.min_confidence == 0.6
    with pytest.warns(FutureWarning) as caught:             # two old keys for one new one
        cfg = config.build({"pipeline": {"min_confidence": 0.3},
                            "translator": {"min_ocr_confidence": 0.6}}, SCHEMA)
    assert cfg.recognizer.min_confidence == 0.3 and len(caught) == 2
    assert "0.6 is ignored: [pipeline] min_confidence = 0.3 is used" in str(caught[1].message)
    with pytest.raises(ConfigError, match=r"\[recognizer\] min_confidence: expected a value <= "):
        with pytest.warns(FutureWarning):
            config.build({"pipeline": {"min_confidence": 3.0}}, SCHEMA)
