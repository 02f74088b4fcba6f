"""The recognizer's alphabet: one place, shared by training, decoding and tests."""

LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
PUNCTUATION = " .,:;!?'\"-+/()&%€$@#*=_<>[]"
GERMAN = "ÄÖÜäöüß"
FRENCH = "éèêàâçôûîïëœÉÈÊÀÂÇÔÛÎÏËŒ"

CHARSET = LATIN + DIGITS + PUNCTUATION + GERMAN + FRENCH
"""Index 0 of the model's output is the CTC blank; character i is class i + 1."""

NUM_CLASSES = len(CHARSET) + 1
BLANK = 0

_INDEX = {ch: i + 1 for i, ch in enumerate(CHARSET)}

# Typographic variants the renderer may meet in vocabularies, folded to the charset.
_FOLD = str.maketrans({"„": '"', "“": '"', "”": '"', "‚": "'", "‘": "'", "’": "'",
                       "–": "-", "—": "-", "\u00a0": " ", "…": "..."[0]})


def normalize(text: str) -> str:
    """Fold typographic quotes/dashes and drop characters outside the charset."""
    text = text.translate(_FOLD)
    return "".join(ch for ch in text if ch in _INDEX)


def encode(text: str) -> list[int]:
    """Text to class indices; raises KeyError on a character outside the charset."""
    return [_INDEX[ch] for ch in text]


def decode(indices) -> str:
    return "".join(CHARSET[i - 1] for i in indices if 0 < i <= len(CHARSET))
