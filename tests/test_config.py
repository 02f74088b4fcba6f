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
