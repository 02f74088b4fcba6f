"""Text to render: dictionary words, French words, numbers, dates, prices, signage.

The German and English words come from the ding dictionary (Debian package `trans-de-en`,
GPL-2+, /usr/share/trans/de-en). `sample_text(rng)` draws one line of 1-5 tokens.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from device.stages.charset import CHARSET, normalize

DING_PATH = Path("/usr/share/trans/de-en")

_TAGS = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[|;]")
_FOLD_TABLE = str.maketrans({"„": '"', "“": '"', "”": '"', "‚": "'", "‘": "'", "’": "'",
                             "–": "-", "—": "-", "\u00a0": " "})
_ALLOWED = set(CHARSET)

FRENCH_WORDS = (
    "sortie entrée fermé ouvert défense de fumer interdit stationnement gare musée église "
    "hôtel café boulangerie pâtisserie crêpes théâtre château forêt rivière été hiver "
    "très bientôt déjà voilà où ça garçon façade reçu leçon français première deuxième "
    "côte île naïve noël maïs cœur sœur œuvre œuf hôpital pharmacie marché fenêtre "
    "billets accès réservé piétons vélos arrêt défendu à gauche à droite tout droit "
    "bienvenue merci s'il vous plaît attention danger péage rue avenue boulevard place "
    "quai départ arrivée horaires fermeture exceptionnelle soldes prix réduits élève "
    "étage rez-de-chaussée sous-sol toilettes accueil caisse entrée libre complet"
).split()

SIGNAGE = (
    "AUSGANG", "EINGANG", "NOTAUSGANG", "EINFAHRT FREIHALTEN", "NUR FÜR ANWOHNER",
    "PARKEN VERBOTEN", "RAUCHEN VERBOTEN", "ZUTRITT VERBOTEN", "PRIVATGRUNDSTÜCK",
    "BAUSTELLE", "ACHTUNG", "VORSICHT STUFE", "UMLEITUNG", "SACKGASSE", "GESCHLOSSEN",
    "GEÖFFNET", "ÖFFNUNGSZEITEN", "KASSE", "TOILETTEN", "DAMEN", "HERREN", "BAHNHOF",
    "HAUPTBAHNHOF", "GLEIS", "ABFAHRT", "ANKUNFT", "FAHRKARTEN", "APOTHEKE", "BÄCKEREI",
    "METZGEREI", "RATHAUS", "POLIZEI", "FEUERWEHRZUFAHRT", "KEIN TRINKWASSER", "ZIEHEN",
    "DRÜCKEN", "BITTE KLINGELN", "HUNDE AN DIE LEINE", "FUSSGÄNGERZONE", "STRASSE GESPERRT",
    "LADEZONE", "TAXI", "BUSHALTESTELLE", "U-BAHN", "S-BAHN", "FLUGHAFEN", "MÜNCHEN",
    "KÖLN", "DÜSSELDORF", "NÜRNBERG", "GÖTTINGEN", "WÜRZBURG", "STRAßE", "GROßE PREISE",
    "SONDERANGEBOT", "AUSVERKAUF", "REDUZIERT", "FRISCH", "HEUTE", "MO-FR", "SA", "SO",
    "EXIT", "ENTRANCE", "NO PARKING", "KEEP CLEAR", "STAFF ONLY", "SORTIE", "ENTRÉE",
    "FERMÉ", "DÉFENSE DE FUMER", "PÉAGE", "CAFÉ", "HÔTEL", "ŒUVRES", "À LOUER",
)

_DAYS = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So", "Montag", "Dienstag", "Mittwoch",
         "Donnerstag", "Freitag", "Samstag", "Sonntag")
_UNITS = ("km", "m", "kg", "g", "l", "ml", "min", "h", "Std.", "t", "%", "km/h", "Nr.", "Tel.")
_PUNCT_TOKENS = ("-", "/", "&", "+", "*", "=", "#", "@", "(", ")", "[", "]", "<", ">", "!",
                 "?", ":", ";", "_", "\"", "'")


@functools.lru_cache(maxsize=2)
def dictionary_words(path: str = str(DING_PATH)) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(German entries, English entries) of the ding dictionary, tags removed, deduplicated."""
    outside = re.compile("[^" + re.escape(CHARSET + "|;") + "]")
    german: set[str] = set()
    english: set[str] = set()
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    for line in text.splitlines():
        if line.startswith("#") or "::" not in line:
            continue
        left, right = line.split("::", 1)
        for side, bag in ((left, german), (right, english)):
            side = outside.sub("", _TAGS.sub(" ", side).translate(_FOLD_TABLE))
            for part in _SEPARATORS.split(side):
                entry = " ".join(part.split()).strip(" ,.;:")
                if 2 <= len(entry) <= 24 and entry.count(" ") <= 2:
                    bag.add(entry)
    return tuple(sorted(german)), tuple(sorted(english))


def _number(rng: np.random.Generator) -> str:
    kind = rng.integers(8)
    if kind == 0:
        return str(rng.integers(0, 100))
    if kind == 1:
        return str(rng.integers(100, 100000))
    if kind == 2:
        return f"{rng.integers(1, 1000)},{rng.integers(0, 100):02d}"
    if kind == 3:
        return f"{rng.integers(1, 1000)}.{rng.integers(0, 1000):03d}"
    if kind == 4:
        return f"{rng.integers(1, 500)} {_UNITS[rng.integers(len(_UNITS))]}"
    if kind == 5:
        return f"{rng.integers(1, 100)}%"
    if kind == 6:
        return f"Nr. {rng.integers(1, 300)}"
    return f"{rng.integers(1, 30)}{'abcd'[rng.integers(4)]}"


def _date(rng: np.random.Generator) -> str:
    d, m, y = rng.integers(1, 29), rng.integers(1, 13), rng.integers(1990, 2031)
    kind = rng.integers(4)
    if kind == 0:
        return f"{d:02d}.{m:02d}.{y}"
    if kind == 1:
        return f"{d}.{m}.{y % 100:02d}"
    if kind == 2:
        return f"{y}-{m:02d}-{d:02d}"
    return f"{d:02d}/{m:02d}/{y}"


def _time(rng: np.random.Generator) -> str:
    h1, h2 = rng.integers(0, 13), rng.integers(12, 24)
    m1, m2 = rng.choice([0, 15, 30, 45]), rng.choice([0, 15, 30, 45])
    kind = rng.integers(4)
    if kind == 0:
        return f"{h1:02d}:{m1:02d}"
    if kind == 1:
        return f"{h1}:{m1:02d} - {h2}:{m2:02d} Uhr"
    if kind == 2:
        return f"{_DAYS[rng.integers(7)]}-{_DAYS[rng.integers(7)]} {h1}-{h2} Uhr"
    return f"{h1}.{m1:02d} Uhr"


def _price(rng: np.random.Generator) -> str:
    euros, cents = rng.integers(0, 1000), rng.integers(0, 100)
    if rng.random() < 0.3:
        euros = rng.integers(0, 20)
    kind = rng.integers(6)
    if kind == 0:
        return f"{euros},{cents:02d} €"
    if kind == 1:
        return f"€ {euros}.{cents:02d}"
    if kind == 2:
        return f"{euros},- €"
    if kind == 3:
        return f"{euros}€"
    if kind == 4:
        return f"${euros}.{cents:02d}"
    return f"EUR {euros},{cents:02d}"


def _phone(rng: np.random.Generator) -> str:
    area = "0" + "".join(str(d) for d in rng.integers(0, 10, rng.integers(2, 5)))
    local = "".join(str(d) for d in rng.integers(0, 10, rng.integers(4, 9)))
    kind = rng.integers(4)
    if kind == 0:
        return f"{area} / {local}"
    if kind == 1:
        return f"+49 {area[1:]} {local}"
    if kind == 2:
        return f"Tel. {area}-{local}"
    return f"({area}) {local}"


def _code(rng: np.random.Generator) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    kind = rng.integers(3)
    if kind == 0:  # licence plate
        return (f"{''.join(rng.choice(list(letters), rng.integers(1, 4)))}-"
                f"{''.join(rng.choice(list(letters), rng.integers(1, 3)))} {rng.integers(1, 9999)}")
    if kind == 1:
        return f"{rng.choice(list(letters))}{rng.integers(1, 99)}"
    return f"www.{''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), rng.integers(3, 10)))}.de"


def _word(rng: np.random.Generator) -> str:
    german, english = dictionary_words()
    r = rng.random()
    if r < 0.50:
        return german[rng.integers(len(german))]
    if r < 0.75:
        return english[rng.integers(len(english))]
    if r < 0.87:
        return FRENCH_WORDS[rng.integers(len(FRENCH_WORDS))]
    if r < 0.95:
        return SIGNAGE[rng.integers(len(SIGNAGE))]
    return _PUNCT_TOKENS[rng.integers(len(_PUNCT_TOKENS))]


_SPECIALS = (_number, _date, _time, _price, _phone, _code)


def _random_chars(rng: np.random.Generator) -> str:
    """A short string of arbitrary charset characters, so rare letters (Ï, Œ, ë) are seen."""
    pool = CHARSET.replace(" ", "")
    return "".join(pool[i] for i in rng.integers(0, len(pool), rng.integers(2, 9)))


def _token(rng: np.random.Generator) -> str:
    if rng.random() < 0.05:
        return _random_chars(rng)
    if rng.random() < 0.22:
        return _SPECIALS[rng.integers(len(_SPECIALS))](rng)
    return _word(rng)


def _case(rng: np.random.Generator, text: str) -> str:
    r = rng.random()
    if r < 0.25:
        return text.upper()
    if r < 0.32:
        return text.lower()
    if r < 0.40:
        return text.title()
    return text


def sample_text(rng: np.random.Generator, max_chars: int = 28) -> str:
    """One line of 1-5 tokens, within the charset, at most `max_chars` characters."""
    n_tokens = int(rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5]))
    tokens = [_token(rng) for _ in range(n_tokens)]
    text = " ".join(tokens)
    if rng.random() < 0.15:
        text += _PUNCT_TOKENS[rng.integers(len(_PUNCT_TOKENS))] if rng.random() < 0.3 else \
            ".,:!?"[rng.integers(5)]
    text = normalize(_case(rng, text))
    text = _SPACES.sub(" ", text).strip()
    if len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars + 1)
        text = text[:cut if cut > 0 else max_chars].strip()
    if not text or not set(text) <= _ALLOWED:
        return sample_text(rng, max_chars)
    return text
