"""The synthetic street on a minimal system (the glasses' root file system has DejaVu only):
its signs fall back to any installed font that covers the charset, and with no font at all
the source says so instead of failing inside numpy (found by scripts/arm64-check)."""

import numpy as np
import pytest

from device.errors import SourceError
from device.synth import fonts, street


def test_signs_fall_back_to_any_covering_font_then_say_what_is_missing(monkeypatch):
    monkeypatch.setattr(street, "SIGN_FONTS", ("/nonexistent/Bold.ttf",))
    monkeypatch.setattr(fonts, "fonts_for", lambda split: ())
    installed = fonts.discover()
    if not installed:
        pytest.skip("no font of a known family installed here (scripts/setup installs them)")
    font = street._font(np.random.default_rng(0), 24)
    assert font.path in {f.path for f in installed}
    monkeypatch.setattr(fonts, "discover", lambda: ())
    with pytest.raises(SourceError, match="no font to draw the synthetic street"):
        street._font(np.random.default_rng(0), 24)
