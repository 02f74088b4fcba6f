"""Font discovery and the fixed train / held-out family split.

Families are matched on the file name prefix of fonts installed from Debian packages
(see `FAMILY_PREFIXES`). Whole families are held out for testing; clones of a held-out
design (e.g. Nimbus Sans = TeX Gyre Heros = Helvetica) are never split across the sets.
A font is used only if it draws every character of `device.stages.charset.CHARSET`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from device.stages.charset import CHARSET

FONT_ROOTS = ("/usr/share/fonts", "/usr/share/texmf/fonts/opentype/public/tex-gyre")

# family name -> (file name prefixes, Debian package that ships it)
FAMILY_PREFIXES: dict[str, tuple[tuple[str, ...], str]] = {
    # --- training families --------------------------------------------------------------
    "DejaVu Sans": (("DejaVuSans-", "DejaVuSans.", "DejaVuSansCondensed"), "fonts-dejavu-core"),
    "DejaVu Serif": (("DejaVuSerif",), "fonts-dejavu-core"),
    "DejaVu Sans Mono": (("DejaVuSansMono",), "fonts-dejavu-core"),
    "Liberation Sans": (("LiberationSans-", "LiberationSansNarrow"), "fonts-liberation2"),
    "Liberation Serif": (("LiberationSerif",), "fonts-liberation2"),
    "Liberation Mono": (("LiberationMono",), "fonts-liberation2"),
    "FreeSans": (("FreeSans",), "fonts-freefont-ttf"),
    "FreeSerif": (("FreeSerif",), "fonts-freefont-ttf"),
    "FreeMono": (("FreeMono",), "fonts-freefont-ttf"),
    "Nimbus Sans": (("NimbusSans-", "NimbusSansNarrow"), "fonts-urw-base35"),
    "Nimbus Roman": (("NimbusRoman",), "fonts-urw-base35"),
    "Nimbus Mono PS": (("NimbusMonoPS",), "fonts-urw-base35"),
    "URW Gothic": (("URWGothic",), "fonts-urw-base35"),
    "URW Bookman": (("URWBookman",), "fonts-urw-base35"),
    "C059": (("C059",), "fonts-urw-base35"),
    "P052": (("P052",), "fonts-urw-base35"),
    "TeX Gyre Heros": (("texgyreheros",), "fonts-texgyre"),
    "TeX Gyre Termes": (("texgyretermes",), "fonts-texgyre"),
    "TeX Gyre Schola": (("texgyreschola",), "fonts-texgyre"),
    "TeX Gyre Adventor": (("texgyreadventor",), "fonts-texgyre"),
    "TeX Gyre Cursor": (("texgyrecursor",), "fonts-texgyre"),
    "Open Sans": (("OpenSans",), "fonts-open-sans"),
    "Roboto": (("Roboto-", "RobotoCondensed"), "fonts-roboto-unhinted"),
    "Cantarell": (("Cantarell",), "fonts-cantarell"),
    "Carlito": (("Carlito",), "fonts-crosextra-carlito"),
    "Caladea": (("Caladea",), "fonts-crosextra-caladea"),
    "Linux Biolinum": (("LinBiolinum_R", "LinBiolinum_RB", "LinBiolinum_RI"), "fonts-linuxlibertine"),
    "B612": (("B612-", "B612Mono"), "fonts-b612"),
    "Hack": (("Hack-",), "fonts-hack"),
    "Inconsolata": (("Inconsolata",), "fonts-inconsolata"),
    "Oxygen": (("Oxygen-Sans", "OxygenMono"), "fonts-oxygen"),
    "Noto Mono": (("NotoMono", "NotoSansMono"), "fonts-noto-mono"),
    "EB Garamond": (("EBGaramond",), "fonts-ebgaramond"),
    "League Spartan": (("LeagueSpartan",), "fonts-league-spartan"),
    "Quicksand": (("Quicksand",), "fonts-quicksand"),
    "Jura": (("Jura",), "fonts-jura"),
    "Go": (("Go-",), "fonts-go"),
    # --- held-out families (test only) ---------------------------------------------------
    "Lato": (("Lato-",), "fonts-lato"),
    "Linux Libertine": (("LinLibertine_R", "LinLibertine_RB", "LinLibertine_RI",
                         "LinLibertine_RZ"), "fonts-linuxlibertine"),
    "Comfortaa": (("Comfortaa",), "fonts-comfortaa"),
    "Fira Code": (("FiraCode",), "fonts-firacode"),
}

HELD_OUT_FAMILIES = ("Lato", "Linux Libertine", "Comfortaa", "Fira Code")
"""One sans (Lato), one serif (Linux Libertine), one rounded display face (Comfortaa),
one monospace (Fira Code): none of them, nor a clone of them, is in the training set."""

TRAIN_FAMILIES = tuple(f for f in FAMILY_PREFIXES if f not in HELD_OUT_FAMILIES)

# Styles that do not look like signage or are not text fonts at all.
_SKIP_WORDS = ("Math", "Symbol", "Dingbat", "Keyboard", "Initials", "Display", "Hairline",
               "Thin", "ExtraLight", "Smallcaps", "SmallCaps", "Z003", "chorus")


@dataclass(frozen=True)
class FontFile:
    family: str
    path: str
    package: str


def _all_font_files(roots=FONT_ROOTS) -> list[Path]:
    files = []
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            files.extend(Path(dirpath, n) for n in names
                         if n.lower().endswith((".ttf", ".otf")))
    return sorted(files)


def _family_of(name: str) -> str | None:
    for family, (prefixes, _pkg) in FAMILY_PREFIXES.items():
        if name.startswith(prefixes):
            return family
    return None


def _mask_bytes(font, ch: str) -> bytes:
    mask = font.getmask(ch)
    return bytes(mask.size) + bytes(mask)


# Every text font has ASCII; checking the rest (and a few ASCII probes) is 4x faster.
_PROBE = "".join(ch for ch in CHARSET if ord(ch) > 127) + "Aag0@#&"


def covers_charset(path: str | Path, chars: str = _PROBE) -> bool:
    """True when the font draws every character differently from its missing-glyph box."""
    try:
        font = ImageFont.truetype(str(path), 24)
    except OSError:
        return False
    missing = {_mask_bytes(font, ch) for ch in "\ue000\uffff\U000f0000"}
    for ch in chars:
        if ch == " ":
            continue
        mask = font.getmask(ch)
        if mask.getbbox() is None or _mask_bytes(font, ch) in missing:
            return False
    return True


@functools.lru_cache(maxsize=None)
def discover(roots: tuple[str, ...] = FONT_ROOTS) -> tuple[FontFile, ...]:
    """Every usable installed font of a known family, sorted by path (deterministic)."""
    found = []
    for path in _all_font_files(roots):
        family = _family_of(path.name)
        if family is None or any(w in path.name for w in _SKIP_WORDS):
            continue
        if covers_charset(path):
            found.append(FontFile(family, str(path), FAMILY_PREFIXES[family][1]))
    return tuple(found)


def fonts_for(split: str) -> tuple[FontFile, ...]:
    """The fonts of one split: 'train' or 'test' (held-out families)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    wanted = set(HELD_OUT_FAMILIES if split == "test" else TRAIN_FAMILIES)
    return tuple(f for f in discover() if f.family in wanted)


def packages_for(split: str) -> list[str]:
    return sorted({f.package for f in fonts_for(split)})
