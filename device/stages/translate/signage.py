"""Sign-text habits: casing styles, and the spans that pass through untranslated.

    style_of("NOTAUSGANG") -> "upper";  apply_style("emergency exit", "upper") -> "EMERGENCY EXIT"
    split_protected("Geöffnet 9:00-18:00 Uhr") -> [("Geöffnet", False), ("9:00-18:00", True)]
"""

from __future__ import annotations

import re
from collections.abc import Callable

from device.stages.translate.normalize import fold

_SMALL = {"a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "for", "by", "with",
          "from", "per", "not"}
# Words German writes small inside a text (no noun has their spelling): a sign that
# capitalizes one of them is set in Title Case. Articles, pronouns, prepositions,
# conjunctions, adverbs and the predicates signs end in.
GERMAN_SMALL = frozenset("""
    der die das den dem des ein eine einen einem einer eines kein keine keinen keinem keiner
    wir uns unser unsere unseren sich es man diese dieser dieses
    diesen jeder jede jedes alle allen
    an am auf aus außer bei beim bis durch für gegen hinter im ins mit nach neben ohne seit
    über um unter von vom vor während wegen zu zum zur zwischen ab per pro
    und oder aber sowie sondern bzw denn wenn falls dass als wie auch noch nur nicht bitte
    hier dort jetzt heute sofort immer gerne gern sehr mehr ganz geradeaus links rechts oben
    unten hinten vorne vorn innen außen täglich wieder
    frei verboten gesperrt geschlossen geöffnet geoeffnet offen erlaubt gestattet untersagt
    besetzt defekt kostenlos gebührenpflichtig kostenpflichtig willkommen herzlich
    freihalten benutzen geeignet""".split())
# Numbers, times, dates, prices, percentages, units glued to digits, codes like A7 or U2.
_PROTECTED = re.compile(
    r"\b\d+[A-Za-z]\b|\b[A-ZÄÖÜ]{1,3}\d+\b|(?:[€$£]\s?)?\d[\d.,:/×x\-–+]*\d?(?:\s?(?:€|EUR|Euro|ct|%|km/h|km|kg|m|cm|mm|h|min|t|l)(?![^\W\d_]))?"
    r"(?:\s?(?:Uhr|UHR)\b)?", re.UNICODE)


_ARROW_SIGN = r"[←↑→↓↖↗↘↙⇐⇑⇒⇓⇦⇧⇨⇩➔➙➚➛➜➝➞➟➠➡⬅⬆⬇▶◀►◄▲▼]\ufe0f?"
_ASCII_ARROW = r"(?:-+>|<-+|=+>|<=+|>>|<<|[<>])"
_ARROWS_AT_ENDS = re.compile(
    rf"((?:(?:{_ARROW_SIGN}|{_ASCII_ARROW}(?=\s|$))\s*)*)(.*?)"
    rf"((?:\s*{_ARROW_SIGN}|\s+{_ASCII_ARROW})*)", re.S)


def split_arrows(text: str) -> tuple[str, str, str]:
    """(arrows before, text, arrows after) of a sign: an arrow points, it is not a word
    ('← Ausgang', 'Toiletten →', '-> Gleis 3'); what the arrows leave is translated."""
    return _ARROWS_AT_ENDS.fullmatch(text).groups()


# Names on shop fronts, doors and plates: a word that takes a name ('Bäckerei Müller', 'Dr.
# Schneider', 'Gasthof zur Post') and the names that follow it, kept as written: the common
# surnames and inn names are words too ('Müller' the miller, 'Krone' the crown), which the
# model translated ('Bäckerei Müller' → 'Rubbish Müller', 'Friseur Schmidt' → 'Hairdresser
# Trace').
PERSON_TAKERS = frozenset("""dr dr. prof prof. med. dent. vet. dres. mag. dipl.-ing.
    dipl.-psych. familie fam. fam herr frau inh. inhaber inhaberin fa. firma gebr.""".split())
"""Words a person's name follows ('Dr. Weber', 'Inh. Thomas Vogel', 'Familie Bauer')."""
_ACADEMIC = frozenset("dr dr. prof prof. med. dent. vet. dres. mag. dipl.-ing. dipl.-psych.".split())
"""Titles after which a surname or a name the dictionary lacks is a name ('Dr. Baum'; not 'Dr.
Urlaub'), and after a first name any surname ('Dr. Tanja Klug'); after 'Herr' a profession
may follow ('Herr Pfarrer')."""
_TRADE_TAKERS = frozenset("""bäckerei backerei baeckerei konditorei metzgerei fleischerei
    friseur friseurin friseursalon salon apotheke praxis arztpraxis zahnarztpraxis
    tierarztpraxis kanzlei rechtsanwalt rechtsanwältin notar steuerberater optik optiker
    augenoptik schreinerei tischlerei zimmerei malerbetrieb autohaus fahrschule buchhandlung
    blumen blumenhaus floristik schuhhaus modehaus juwelier getränkemarkt reisebüro
    physiotherapie hofladen weingut brauerei metzger bäcker zahnarzt zahnärztin arzt ärztin
    tierarzt tierärztin hausarzt hausärztin frauenarzt frauenärztin kinderarzt kinderärztin
    heilpraktiker heilpraktikerin internist internistin chirurg chirurgin augenarzt augenärztin
    hautarzt hautärztin orthopäde orthopädin ergotherapie logopädie osteopathie psychotherapie
    notariat notar notarin rechtsanwälte anwaltskanzlei werkstatt autowerkstatt elektro sanitär
    schneiderei uhren schmuck brillen trafik haarstudio kosmetik nagelstudio fußpflege
    reinigung radsport fahrräder""".split())
_TRADE_HEADS = ("praxis", "therapie", "metzgerei", "bäckerei", "konditorei", "werkstatt",
                "schneiderei", "friseur", "studio")
"""A compound that ends in one of these takes a name as the trade does ('Landmetzgerei
Kirchhofer', 'Hausarztpraxis Dr. Baum', 'Kfz-Werkstatt Bauer', 'Bäckerei-Konditorei Fuchs')."""
_INN_TAKERS = frozenset("""hotel gasthof gasthaus gaststätte pension restaurant café cafe
    wirtshaus landgasthof hotel-restaurant eiscafé eiscafe eisdiele pizzeria trattoria
    ristorante bistro imbiss kaffeehaus bierstube beisl taverne""".split())
_INN_HEADS = ("hotel", "gasthof", "gasthaus", "café", "cafe", "imbiss", "wirtshaus")
"""Compounds that are inns ('Landhotel', 'Brauereigasthof', 'Café-Konditorei')."""
SURNAMES = frozenset("""Müller Schmidt Schneider Fischer Weber Meyer Meier Mayer Maier Wagner
    Becker Schulz Hoffmann Hofmann Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann
    Schwarz Zimmermann Braun Krüger Hartmann Lange Schmitt Schmid Werner Schmitz Krause
    Lehmann Schulze Köhler Herrmann König Walter Huber Kaiser Fuchs Peters Lang Scholz Möller
    Weiß Weiss Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth
    Beck Lorenz Baumann Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin
    Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas Schreiber
    Graf Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann Voigt Sauer Arnold Wolff
    Pfeiffer Gruber Pichler Steiner Moser Hofer Eder Leitner Wimmer Egger Brunner
    Baum Berg Bach Blum Frei Fink Frost Hase Held Herbst Kranz Lamm Licht Nagel Reh Stahl
    Kurz Stark Adler Ernst Gross Hirsch Schnell""".split())
INN_NAMES = frozenset("""Krone Sonne Adler Löwen Löwe Hirsch Hirschen Linde Rose Stern Post
    Engel Bären Bär Ochsen Lamm Rössle Rößle Schwanen Schwan Traube Hecht Anker Mohren
    Rebstock Kreuz Hahn Falken Eiche Lindenhof Sonnenhof Bahnhof Könige König Baum Mühle
    Schiff Fass Ross Roß Rössl Rössli Brunnen Turm Tor Schlüssel Stier Bock Mond Wolf
    Kaiserhof Kaiser Kranz Ochse Gans Gams Greif Pfau Storch Hase""".split())
_INN_ARTICLES = frozenset({"zum", "zur", "zu", "den", "der", "am"})
_PLACE_TAKERS = frozenset("""u-bahn s-bahn bahnhof bf. bf haltestelle bushaltestelle station
    richtung hbf hbf. tram straßenbahn bus gleis bahnsteig flughafen""".split())
_TRAINS = frozenset("ice ic ec re rb rex rj cjx nightjet railjet flixtrain".split())
_COMPANY = frozenset("gmbh ag kg ohg e.k. e.v. & co. co sohn söhne partner".split())
_LINE = re.compile(r"(?:S|U|RE|RB|IC|ICE|EC|IRE|RS|STR|N|X)\d{1,4}", re.IGNORECASE)
"""A line whose destination follows ('S1 Freising', 'U3 Moosach')."""
_STATION_ENDS = frozenset("hbf hbf. bf bf. hb".split())
"""The abbreviations after a station's place name ('Köln Hbf'): the two are the station's name,
written as the sign writes it (as the register writes 'nach Köln Hbf': 'to Köln Hbf')."""
_JOINS = frozenset({"&", "und", "+"})
"""Between two words that take a name ('Bäckerei & Konditorei Schmidt')."""
_PLATE_WORDS = PERSON_TAKERS | _TRADE_TAKERS | _INN_TAKERS | _INN_ARTICLES | _PLACE_TAKERS | \
    _TRAINS | _JOINS | _STATION_ENDS
"""The words a name plate holds beside its names."""


def name_plate(words: list[str], unknown=None) -> dict[int, str]:
    """The names on a name plate, index → kind ('person', 'trade', 'inn', 'place', 'station'):
    words that take a name and the names after them, nothing else ('Bäckerei Müller' → {1:
    'trade'}, 'Bäckerei & Konditorei Schmidt', 'Salon Anna', 'Köln Hbf' → {0: 'station',
    1: 'station'}, 'Praxis Dr. med. Anna Weber' → Anna and Weber, 'Gasthof zur Post' → zur
    and Post, 'Herr
    Müller'; with `unknown` (word → a name the dictionary does not know as a word) also 'Dr.
    Krzyzanowski', 'U-Bahn Marienplatz', 'S1 Freising', a first name after a trade: 'Salon
    Anna', a station's place: 'Köln Hbf'); else (a sentence that names someone,
    'Parkplatz nur für Patienten der Praxis Dr. Weber': the model reads names in context)
    nothing."""
    taken = _names_after_takers(words, unknown)
    # what follows a comma after a name is read as words ('Dr. med. Karin Baum,
    # Allgemeinmedizin': the speciality translated, the plate before it kept)
    cut = next((i + 1 for i, w in enumerate(words) if w.endswith(",") and i in taken),
               len(words))
    if not taken or cut > 6 or len(words) - cut > 4:
        return {}
    rest = {i: w.strip(",;:!?\"'()") for i, w in enumerate(words[:cut]) if i not in taken}
    if not all(_plate_word(w) or _LINE.fullmatch(w) or w.isdigit() or
               (_station_word(w) and i - 1 in taken) for i, w in rest.items()):
        return {}
    # a train's kind stays as written ('RE 7', 'ICE'; the dictionary's 'Re' is a card call)
    return {**taken, **{i: "train" for i, w in rest.items() if w.lower() in _TRAINS}}


def takes_name(word: str) -> bool:
    """A trade, an inn or a title that a name follows ('Metzgerei', 'Gasthof', 'Dr.')."""
    return _taker(word) is not None or word.lower() in PERSON_TAKERS


def _taker(word: str) -> str | None:
    """'trade' or 'inn' for a word that takes a name, compounds too ('Bäckerei',
    'Landmetzgerei', 'Kfz-Werkstatt', 'Brauereigasthof', 'Landhotel')."""
    w = word.lower()
    if w in _TRADE_TAKERS or (len(w) > 6 and w.endswith(_TRADE_HEADS)):
        return "trade"
    if w in _INN_TAKERS or (len(w) > 6 and w.endswith(_INN_HEADS)):
        return "inn"
    return None


def _plate_word(word: str) -> bool:
    """A word a name plate holds beside its names."""
    return word.lower() in _PLATE_WORDS or word.lower() in TITLES or _taker(word) is not None


def _station_word(word: str) -> bool:
    """A station of a place ('Ostbahnhof', 'Hauptbahnhof' after 'Berlin')."""
    return word[:1].isupper() and word.lower().endswith("bahnhof")


_COMPASS = frozenset("nord süd ost west mitte".split())
"""After a place, part of its name ('Neumarkt Süd')."""
_PLACE_PREFIXES = frozenset("bad st. sankt".split())
"""Before a place, part of its name ('Bahnhof Bad Waldsee', 'Richtung St. Gallen')."""
_NUMBER_WORDS = frozenset("zwei drei vier fünf sieben".split())


def _names_after_takers(words: list[str], unknown=None) -> dict[int, str]:
    """The words that name a person, a trade, an inn or a place after a word that takes a
    name, index → kind: 'Bäckerei Müller' → {1: 'trade'}, 'Gasthof zur Post' → {1: 'inn', 2:
    'inn'}, 'Hotel Krone' → {1: 'inn'}, 'Dr. Weber' → {1: 'person'}. The common surnames and
    inn names count, and with `unknown` a name the dictionary does not know ('Dr.
    Krzyzanowski'; a place after a station word or a line: 'U-Bahn Marienplatz', 'S1
    Freising'): 'Apotheke Notdienst' and 'Herr Doktor' name nobody. After an academic title
    a surname or a name the dictionary lacks is a name ('Dr. Baum'), after a first name the
    surname ('Nina Berg'); after an inn word an inn's name of an adjective and an inn noun
    ('Gasthof Goldener Stern', 'Restaurant Zum Grünen Baum'); after a station word a place of
    several parts ('Bahnhof Bad Waldsee', 'Richtung Kassel-Wilhelmshöhe', 'Haltestelle
    Neumarkt Süd'); before Hbf ('Frankfurt (Main) Hbf'). Nothing reads on past a comma."""
    taken: dict[int, str] = {}
    first: set[int] = set()       # first names: a surname follows
    titled: set[int] = set()      # first names after a title ('Dr. Tanja'): any surname
    plain = [w.strip(",;:!?\"'()") for w in words]
    n = len(words)

    def capital(word: str) -> bool:
        word = word.rstrip(".")
        return len(word) > 1 and word.isalpha() and word[:1].isupper() and \
            (word[1:].islower() or word.isupper())

    def known_name(word: str) -> bool:
        return unknown is not None and unknown(word.rstrip("."))

    def person(word: str) -> bool:
        return capital(word) and word.lower() not in PERSON_TAKERS and (
            _as_name(word) in SURNAMES or known_name(word))

    def hyphen_place(word: str) -> bool:       # 'Kassel-Wilhelmshöhe', 'Wien-Schwechat'
        parts = word.split("-")
        return len(parts) > 1 and all(capital(p) for p in parts) and known_name(parts[0])

    def inn_pair(i: int) -> bool:              # 'Goldener Stern', 'Drei Könige'
        word = plain[i].lower()
        return i + 1 < n and capital(plain[i]) and not words[i].endswith(",") and \
            (word.endswith(("er", "es", "en", "e")) or word in _NUMBER_WORDS) and \
            _as_name(plain[i + 1].rstrip(".")) in INN_NAMES

    for i in range(n - 1):
        nxt = plain[i + 1].lower()
        bracket = words[i + 1].startswith("(") and words[i + 1].endswith(")") and i + 2 < n \
            and plain[i + 2].lower() in _STATION_ENDS
        if not (capital(plain[i]) or hyphen_place(plain[i])) or not known_name(
                plain[i].split("-")[0]):
            continue
        if nxt in _STATION_ENDS or bracket:
            # 'Köln Hbf' (the model read 'Kopp Hbf'), 'Zürich HB', 'Frankfurt (Main) Hbf'
            for j in range(i, i + (3 if bracket else 2)):
                taken[j] = "station"
        elif _station_word(plain[i + 1]):
            taken[i] = "place"         # 'Berlin Ostbahnhof' (read 'Easthof')
    for i in range(1, n):
        if i in taken:
            continue
        if words[i - 1].endswith(","):
            continue                   # after a comma: words ('Friseur Anna, Montag Ruhetag')
        before, word = plain[i - 1].lower(), plain[i]
        kind = _taker(before)
        name = _as_name(word.rstrip("."))
        if i - 1 in taken and word.lower() in _COMPANY:
            taken[i] = "company"       # 'Bäckerei Müller GmbH', 'Müller & Sohn'
            continue
        place_before = before in _PLACE_TAKERS or before in _TRAINS or \
            _LINE.fullmatch(plain[i - 1]) or taken.get(i - 1) == "place"
        if unknown is not None and place_before and hyphen_place(word):
            taken[i] = "place"
            continue
        if unknown is not None and place_before and word.lower() in _PLACE_PREFIXES and \
                i + 1 < n and capital(plain[i + 1]):
            taken[i] = taken[i + 1] = "place"   # 'Bad Waldsee', 'St. Gallen'
            continue
        if taken.get(i - 1) == "place" and word.lower() in _COMPASS:
            taken[i] = "place"         # 'Neumarkt Süd'
            continue
        inn_before = kind == "inn" or (before in _INN_ARTICLES and (
            i - 1 in taken or (i >= 2 and _taker(plain[i - 2]) == "inn")))
        if kind == "inn" and word.lower() in _INN_ARTICLES and i + 1 < n and (
                _as_name(plain[i + 1].rstrip(".")) in INN_NAMES or inn_pair(i + 1)):
            taken[i] = "inn"           # 'zur' of 'Gasthof zur Post', 'Zum Goldenen Hahn'
        elif inn_before and inn_pair(i):
            taken[i] = taken[i + 1] = "inn"   # 'Hotel Schwarzer Bär', 'Zum Grünen Baum'
        elif not capital(word):
            continue
        elif unknown is not None and place_before and unknown(word):
            taken[i] = "place"
        elif kind == "trade" and (name in SURNAMES or (
                unknown is not None and not _plate_word(word) and unknown(word))):
            taken[i] = "trade"         # 'Optik Schmidt', 'Salon Anna'; not 'Apotheke Notdienst'
            if name not in SURNAMES:
                first.add(i)
        elif inn_before and (name in INN_NAMES | SURNAMES or (
                kind == "inn" and known_name(word) and not _plate_word(word))):
            taken[i] = "inn"           # 'Hotel Krone', 'Eiscafé Venezia'; not 'Hotel
            #                            Rezeption', 'Hotel Biergarten'
        elif (before in _ACADEMIC or i - 1 in first) and person(word):
            taken[i] = "person"        # 'Dr. Baum', 'Dr. med. Jürgen Fink', 'Nina Berg';
            #                            not 'Dr. Urlaub', 'Salon Anna Geschlossen'
            if name not in SURNAMES and before in _ACADEMIC:
                first.add(i)
                titled.add(i)
        elif i - 1 in titled and word.lower() not in PERSON_TAKERS and not _plate_word(word):
            taken[i] = "person"        # a title, a first name, a surname: 'Dr. Tanja Klug'
        elif (before in PERSON_TAKERS or taken.get(i - 1) in ("person", "company", "trade")) \
                and person(word):
            taken[i] = "person"        # 'Herr Weber', 'Rechtsanwalt Thomas Becker'
            if name not in SURNAMES:
                first.add(i)
                if before in PERSON_TAKERS and before not in ("inh.", "inhaber", "inhaberin"):
                    titled.add(i)      # 'Frau Maria Stern'
        elif before in PERSON_TAKERS and word.lower() not in PERSON_TAKERS and \
                unknown is not None and unknown(word) and i + 1 < n and \
                person(plain[i + 1]):
            taken[i] = "person"        # a first name: 'Dr. med. Anna Weber'; not 'Pfarrer'
    return taken


TITLES = {"dr.": "Dr.", "dr": "Dr", "prof.": "Prof.", "prof": "Prof", "med.": "med.",
          "dent.": "dent.", "vet.": "vet.", "dres.": "Drs.", "mag.": "Mag.",
          "dipl.-ing.": "Dipl.-Ing.", "dipl.-psych.": "Dipl.-Psych.", "gebr.": "Gebr.",
          "herr": "Mr", "frau": "Ms", "richtung": "towards", "fa.": "", "firma": ""}
"""A title before a name, as an English sign writes it ('Herr Müller' → 'Mr Müller', 'U2
Richtung Pankow' → 'U2 towards Pankow'; 'Herr Dr. Müller' → 'Dr. Müller'; 'Fa. Müller' →
'Müller')."""
EXONYMS = {"München": "Munich", "Köln": "Cologne", "Wien": "Vienna", "Nürnberg": "Nuremberg",
           "Zürich": "Zurich", "Genf": "Geneva", "Hannover": "Hanover", "Mailand": "Milan",
           "Prag": "Prague", "Warschau": "Warsaw", "Brüssel": "Brussels", "Rom": "Rome",
           "Venedig": "Venice", "Luxemburg": "Luxembourg", "Kopenhagen": "Copenhagen",
           "Athen": "Athens", "Lissabon": "Lisbon", "Moskau": "Moscow", "Florenz": "Florence",
           "Neapel": "Naples", "Bodensee": "Lake Constance"}
"""Places an English sign names in English ('Richtung München' → 'Towards Munich'); every
other place is written as the German sign writes it."""


def english_place(word: str) -> str:
    """A place as an English sign names it: 'München' → 'Munich', 'KÖLN' → 'COLOGNE', 'Köln:'
    → 'Cologne:'; others as written."""
    core = word.strip(".,;:!?\"'()")
    english = EXONYMS.get(_as_name(core))
    if english is None:
        return word
    return word.replace(core, english.upper() if core.isupper() else english)


def _as_name(word: str) -> str:
    return word.capitalize() if word.isupper() else word


def style_of(text: str, knows: Callable[[str], bool] | None = None) -> str:
    """'upper' (ALL CAPS), 'title' (every word capitalized, and a word after the first one no
    noun: a word German writes small, or with `knows` (a German word, folded lowercase) an
    adjective a name capitalizes), 'sentence' or 'lower'. German capitalizes every noun, so
    'Kein Zutritt', 'Erste Hilfe' and 'Notausgang' are plain German, not Title Case: they are
    'sentence' and their English keeps its own casing ('No entry'). 'Bitte Nicht Stören' and
    'Zimmer Frei' are 'title', and so is a name such as 'Deutsches Rotes Kreuz' ('Rotes':
    'rot' + an ending) → 'German Red Cross'."""
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return "upper"
    words = list(re.finditer(r"[^\W\d_]+", text))
    inside = [w.group() for w in words        # not a sentence's first word ('Achtung! Die')
              if text[:w.start()].rstrip()[-1:] not in ("", ".", "!", "?", ":")]
    if words and all(w.group()[0].isupper() for w in words) and any(
            w.lower() in GERMAN_SMALL or (knows is not None and _adjective(w, knows))
            for w in inside):
        return "title"
    if letters and letters[0].isupper():
        return "sentence"
    return "lower"


_SLASH_PART = re.compile(r"[^\W\d_]{2,}-?")
# what follows a slash where it means 'per' ('Preis/kg', 'Preis/Stück'), not 'or'
_PER = frozenset("stück stk person pers tag nacht woche monat jahr kind stunde std min kg km "
                 "qm liter".split())


def slash_parts(text: str, knows: Callable[[str], bool]) -> list[str] | None:
    """The words of a sign that is a list of words between slashes ('Damen/Herren',
    'Kaffee / Tee'), each read alone; a word cut at a hyphen gets the end of the next one
    not cut itself where that makes a word `knows` ('Ein-/Ausgang' → 'Eingang', 'Ausgang';
    'Zu-/Abfahrt'). None for anything else: one word, a 'per' ('Preis/kg'), days ('Mo/Di':
    the rules write them), a cut word that no ending makes whole."""
    parts = [part.strip() for part in text.split("/")]
    if len(parts) < 2 or not all(_SLASH_PART.fullmatch(p) for p in parts) or \
            parts[-1].endswith("-") or any(p.lower() in _PER for p in parts[1:]) or \
            render_in_place(text) != text:
        return None
    out = []
    for index, part in enumerate(parts):
        if part.endswith("-"):
            whole = next((p for p in parts[index + 1:] if not p.endswith("-")))
            end = whole if part[:-1].isupper() else whole.lower()   # 'EIN-/AUSGANG'
            part = next((part[:-1] + end[cut:] for cut in range(1, len(end) - 2)
                         if knows(part[:-1] + end[cut:])), None)
            if part is None:
                return None
        out.append(part)
    return out


_CUT_SLASH = re.compile(r"(?<=[^\W\d_])-\s*/\s*(?=[^\W\d_])")


def cut_words_joined(text: str) -> str:
    """A word cut at a hyphen before a slash is one of two ('Ein-/Ausgang freihalten' → 'Ein-
    und Ausgang freihalten', as German writes it too): the model reads the 'und'."""
    style = style_of(text)
    return _CUT_SLASH.sub({"upper": "- UND ", "title": "- Und "}.get(style, "- und "), text)


def small_start(english: str) -> str:
    """A phrase continuing a sentence ('Mon/Tue' + 'Closed' from the sign book): its first
    letter small, unless its first word keeps its capitals ('WC', 'Wi-Fi', 'Munich', 'Lake
    Constance', 'Monday', 'German-speaking')."""
    first = re.match(r"[^\W\d_]*", english).group()
    if not first[:1].isupper() or not first[1:2].islower() or _FIXED_WORD.match(english) or \
            first.lower() in _DAY_OR_MONTH or first.lower() in _FIXED_CASE:
        return english
    return english[:1].lower() + english[1:]


def _adjective(word: str, knows: Callable[[str], bool]) -> bool:
    """An inflected adjective ('Rotes', 'Englischer', 'Technische', 'Städtisches'): an
    adjective's stem (a colour or another plain adjective, or a known word made with -isch,
    -lich, -ig, -bar, -sam, -haft) and an ending. Not a noun's plural ('Kinder',
    'Nationalitäten') nor a word that is an entry as it stands."""
    folded = fold(word).lower()
    if knows(folded):
        return False
    for end in ("es", "er", "en", "em", "e"):
        stem = folded[:-len(end)]
        if folded.endswith(end) and (stem in _PLAIN_ADJECTIVES or (
                stem.endswith(_ADJECTIVE_ENDS) and len(stem) > 5 and knows(stem))):
            return True
    return False


_PLAIN_ADJECTIVES = frozenset("rot blau gruen gelb weiss schwarz braun grau gross klein alt "
                              "neu hoch gut deutsch frei golden".split())
_ADJECTIVE_ENDS = ("isch", "lich", "ig", "bar", "sam", "haft")


def apply_style(english: str, style: str, keep_case: bool = False) -> str:
    """Cast an English translation into the input's style. keep_case: the text has its own
    casing (a dictionary entry) and is left alone for 'lower'/'sentence' beyond the first
    letter."""
    if not english:
        return english
    if style == "upper":
        return english.upper()
    if not keep_case:
        english = re.sub(r"\bi\b", "I", english)
    if style == "title":
        words = english.split(" ")
        return " ".join(w if (i > 0 and w.lower() in _SMALL) or not w[:1].isalpha()
                        else w[:1].upper() + w[1:] for i, w in enumerate(words))
    if style == "sentence":
        return english[:1].upper() + english[1:]
    return english


_DAYS = {"mo": "Mon", "di": "Tue", "mi": "Wed", "do": "Thu", "fr": "Fri", "sa": "Sat",
         "so": "Sun"}
_DAY_NAMES = {"montag": "Monday", "dienstag": "Tuesday", "mittwoch": "Wednesday",
              "donnerstag": "Thursday", "freitag": "Friday", "samstag": "Saturday",
              "sonnabend": "Saturday", "sonntag": "Sunday"}
_DASH = r"\s*(?:[-–—]|bis|Bis)\s*"
_ABBR = r"(?:Mo|Di|Mi|Do|Fr|Sa|So)\.?"
_NAME = r"(?:Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonnabend|Sonntag)s?"
_CLOCK = r"\d{1,2}(?:[:.]\d{2})?"
_MONTHS = {"januar": "January", "jänner": "January", "februar": "February", "märz": "March",
           "maerz": "March", "april": "April", "mai": "May", "juni": "June", "juli": "July",
           "august": "August", "september": "September", "oktober": "October",
           "november": "November", "dezember": "December"}
_AMOUNT = r"(?:\d{1,3}(?:\.\d{3})+|\d+)"      # 1.299 (thousands) or 1299
_MONTH = rf"(?:{'|'.join(m.capitalize() for m in _MONTHS)})"
_DATE_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_NUMERIC_MONTH = r"(?:0?[1-9]|1[0-2])"
# a day abbreviation is a day before a time, in a list of days, or before 'closed'
_DAY_CONTEXT = (rf"(?=\s*[:,]?\s*\d|\s*[,/+&]\s*{_ABBR}(?![^\W\d_])|\s+und\s+{_ABBR}\b"
                r"|\s+(?i:geschlossen|geöffnet|ruhetag)\b)")
# Words that start a sentence after a number ('Zimmer 3. Bitte klingeln'), not a noun that an
# ordinal counts ('1. Klasse', 'jeden 1. Dienstag')
_NOT_AFTER_ORDINAL = (r"(?:Bitte|Danke|Vielen|Achtung|Die|Der|Das|Dem|Den|Ein|Eine|Wir|Sie|Es|Er|"
                      r"Ab|Am|Im|Bei|Nur|Kein|Keine|Ihr|Ihre|Hier|Dies|Diese|Heute|Jetzt|"
                      r"Og|Ug|Eg)")   # floors as an ALL CAPS sign's title-case probe has them
# Swiss francs: an amount ('1'200' with the Swiss thousands mark), its Rappen ('.50') or a
# dash for none ('.–', '.--'). After 'Fr.' the amount must be no clock time: 'Fr. 9.30' is
# Friday at 9:30, 'Fr. 4.90' and 'Fr. 12.–' are prices; CHF and SFr. are always francs.
_FRANCS = r"(?:\d{1,3}(?:'\d{3})+|\d+)"
_RAPPEN = r"(?:\.\d{2}|\.[-–—]{1,2})"
_NO_CLOCK = r"(?:\.[6-9]\d|\.[-–—]{1,2})"
# Sign spans rendered the English way (checked before the generic protected pattern).
_SIGN = re.compile(
    rf"(?P<daterange>\b{_DATE_DAY}\.{_DASH}{_DATE_DAY}\.(?:\s?{_MONTH}\b|{_NUMERIC_MONTH}\.)"
    rf"(?:\s?\d{{4}}\b)?)"
    rf"|(?P<date>\b{_DATE_DAY}\.\s?{_MONTH}\b(?:\s\d{{4}}\b)?)"
    rf"|(?P<numericdate>\b{_DATE_DAY}\.{_NUMERIC_MONTH}\.(?:\d{{4}}\b|\d{{2}}\b)?(?![\d.]))"
    rf"|(?P<francs>\b(?:SFr\.|CHF)\s?{_FRANCS}{_RAPPEN}?(?![\d.'])"
    rf"|(?<![\d.,']){_FRANCS}{_RAPPEN}?\s?(?:SFr\.|CHF)(?![^\W\d_])"
    rf"|\bFr\.\s?{_FRANCS}{_NO_CLOCK}(?![\d.'])(?!\s?[-–—]\s?\d)"
    rf"|(?<![\d.,']){_FRANCS}{_NO_CLOCK}\s?Fr\.(?!\s?\d))"
    rf"|(?P<dayrange>\b{_ABBR}{_DASH}{_ABBR}(?![^\W\d_]))"
    rf"|(?P<namerange>\b{_NAME}{_DASH}{_NAME}\b)"
    rf"|(?P<dayname>\b{_NAME}(?=\s*[:,]?\s*\d)|^{_NAME}$)"
    rf"|(?P<day>(?<![^\W\d_]){_ABBR}{_DAY_CONTEXT})"
    rf"|(?P<duration>(?<![\d.,\-–/:])\d{{1,3}}(?:,\d)?(?:\s?[-–]\s?\d{{1,3}})?\s?(?:Std|Min)\.?"
    rf"(?![^\W\d_]))"
    rf"|(?P<timerange>\b{_CLOCK}\s*[-–—]\s*{_CLOCK}(?:\s*(?:Uhr|[hH])\b)?)"
    rf"|(?P<floor>\b\d{{1,2}}\.\s?(?:OG|Obergeschoss|Etage|Stock)\b)"
    rf"|(?P<ground>\b(?:EG|Erdgeschoss)\b)"
    rf"|(?P<basement>\b(?:\d\.\s?)?(?:UG|Untergeschoss)\b)"
    rf"|(?P<ordinal>(?<![\w.,])(?:[1-9]|1\d|20)\.(?=\s?[A-ZÄÖÜ][a-zäöüß])(?!\s?{_NOT_AFTER_ORDINAL}\b))"
    rf"|(?P<cents>(?<![\d.,])\d{{1,2}}\s?(?:Cent|ct)(?![^\W\d_]))"
    rf"|(?P<price>(?<![\d.,]){_AMOUNT}(?:[,.]\d{{2}}|,-)?\s?(?:€|EUR|Euro)(?![^\W\d_])"
    rf"(?:\s\d{{1,2}}\s?(?:Cent|ct)(?![^\W\d_]))?"
    rf"|€\s?{_AMOUNT}(?:[,.]\d{{2}})?(?![\d.,]))",
    re.UNICODE)
TIME_STYLES = ("24h", "12h")
_TIMES = rf"{_CLOCK}(?:\s*[-–—]\s*{_CLOCK})?"
_TIME_LIST = r"(?:,|/|&|(?i:sowie|und))"
"""What joins the times of a list ('13–15 und 22–7 Uhr', '12, 14 und 16 Uhr')."""
_UHR_AFTER = re.compile(rf"(?:\s*{_TIME_LIST}\s*{_TIMES})*\s*(?i:uhr)\b")
"""After a time: more times in a list, then Uhr ('13–15 und 22–7 Uhr')."""
TIME_WORDS = ("um", "ab", "von", "bis", "gegen", "zwischen")
"""German words before a clock time ('um 9', 'von 9 bis 12')."""
_TIME_WORD_BEFORE = re.compile(rf"(?:(?i:\b(?:{'|'.join(TIME_WORDS)}|täglich))|"
                               rf"\b{_ABBR}|\b{_NAME}|\b{_ABBR}{_DASH}{_ABBR})\s*[:,]?\s*$")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def clock(text: str, style: str) -> str:
    """'9' / '9.30' / '18:00' → '9:00' / '9:30' / '18:00' (24h) or '9 am' / '9:30 am' / '6 pm'."""
    hours, _, minutes = text.replace(".", ":").partition(":")
    h, m = int(hours), int(minutes or 0)
    if style == "12h" and h <= 24:
        suffix = "am" if h % 24 < 12 else "pm"
        h12 = h % 12 or 12
        return f"{h12} {suffix}" if m == 0 else f"{h12}:{m:02d} {suffix}"
    return f"{h}:{m:02d}"


_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")


_DURATION_BEFORE = re.compile(
    r"(?i:\b(?:max|maximal|ca|mind|mindestens|\w*dauer|\w*ladezeit|\w*fahrzeit|\w*gehzeit|"
    r"\w*wartezeit|\w*parkzeit)\.?)\s*:?\s*$")
"""Words that make hours marked 'h' a duration ('Ladezeit 6-8 h', 'Parkdauer max. 5-8 h')."""


def _is_time_range(span: str, uhr_after: bool = False, before: str = "") -> bool:
    """A range of clock times: with Uhr, or with minutes, or hours before a list that ends in
    Uhr (`uhr_after`); 'h' marks hours as Uhr does ('9–18 h', '10-20h') where the range reads
    as a time of day (hours up to 24 that start at 5 or later, or have minutes, and no
    duration word `before` it), else it is a duration ('1–2 h', 'Ladezeit 6–8 h')."""
    body = re.sub(r"\s*(?:Uhr|[hH])$", "", span)
    a, b = re.split(r"\s*[-–—]\s*", body, maxsplit=1)
    first, last = (int(re.match(r"\d+", x).group()) for x in (a, b))
    minutes = ":" in body or "." in body
    if span.endswith("Uhr"):
        return True
    if body != span:                                   # ends in h
        return last <= 24 and (first >= 5 or minutes) and not _DURATION_BEFORE.search(before)
    return minutes or (uhr_after and first <= 24 and last <= 24)


def render_sign_span(kind: str, span: str, time_style: str = "24h",
                     uhr_after: bool = False) -> str:
    """How an English sign writes a German date, day, time range, floor or price;
    `uhr_after`: a list of times that ends in Uhr follows, so a bare range of hours is a
    time too ('Ruhezeit 13–15 und 22–7 Uhr'; not 'Kinder 6–14 Jahre, bis 17 Uhr')."""
    if kind in ("date", "daterange", "numericdate"):
        # '1. Juni' → '1 June', '4. bis 18. März' → '4 to 18 March', '27.–30.12.' → '27–30
        # December', '24.12.2026' → '24 December 2026' (as the register writes them)
        numbers = re.findall(r"\d+", span)
        year = numbers.pop() if len(numbers[-1]) == 4 or (
            kind == "numericdate" and len(numbers) == 3) else None
        name = next((w for w in re.findall(r"[^\W\d_]+", span) if w.lower() in _MONTHS), None)
        month = _MONTHS[name.lower()] if name else _MONTH_NAMES[int(numbers.pop()) - 1]
        days = str(int(numbers[0]))
        if kind == "daterange":
            joint = " to " if re.search(r"bis", span, re.IGNORECASE) else "–"
            days += joint + str(int(numbers[1]))
        year = ("20" + year) if year and len(year) == 2 else year
        return f"{days} {month}" + (f" {year}" if year else "")
    if kind == "dayrange":
        a, b = re.split(_DASH, span, maxsplit=1)
        return f"{_DAYS[a.strip(' .').lower()]}–{_DAYS[b.strip(' .').lower()]}"
    if kind == "namerange":
        a, b = re.split(_DASH, span, maxsplit=1)
        return f"{_DAY_NAMES[a.strip().lower().rstrip('s')]} to " \
               f"{_DAY_NAMES[b.strip().lower().rstrip('s')]}"
    if kind == "dayname":
        word = span.lower()
        plural = word.endswith("s") and word[:-1] in _DAY_NAMES
        return _DAY_NAMES[word[:-1] if plural else word] + ("s" if plural else "")
    if kind == "day":
        return _DAYS[span.strip(" .").lower()]
    if kind == "timerange":
        if not _is_time_range(span, uhr_after):
            return span          # '3-4' without Uhr or a colon: not known to be a time
        a, b = re.split(r"\s*[-–—]\s*", re.sub(r"\s*(?:Uhr|[hH])$", "", span), maxsplit=1)
        return f"{clock(a, time_style)}–{clock(b, time_style)}"
    if kind == "floor":
        number = int(re.match(r"\d+", span).group())
        return f"{_ordinal(number)} floor"
    if kind == "duration":   # 'max. 2 Std.' → 'max. 2 hrs', '2-3 Std.' → '2–3 hrs', '30 Min.'
        numbers = [n.replace(",", ".") for n in re.findall(r"\d+(?:,\d)?", span)]
        number = "–".join(numbers)
        if "min" in span.lower():
            return f"{number} min"
        return f"{number} {'hr' if number == '1' else 'hrs'}"
    if kind == "ordinal":               # '1. Klasse' → '1st' Klasse
        return _ordinal(int(span.rstrip(".")))
    if kind == "ground":
        return "Ground floor"
    if kind == "basement":
        number = re.match(r"\d", span)
        return f"Basement {number.group()}" if number and number.group() != "1" else "Basement"
    if kind == "cents":                 # '50 Cent' → '€0.50', '5 ct' → '€0.05'
        return f"€0.{int(re.match(r'[0-9]+', span).group()):02d}"
    if kind == "francs":         # 'CHF 4.50' → 'CHF 4.50', '12.– Fr.' → 'CHF 12', '1'200.–'
        francs, rappen = re.search(rf"({_FRANCS})(?:\.(\d{{2}}))?", span).groups()
        return f"CHF {francs.replace(chr(39), ',')}" + (f".{rappen}" if rappen else "")
    if kind == "price":                 # '1.299,00 €' → '€1,299.00', '2,50 €' → '€2.50'
        amount = re.search(rf"({_AMOUNT})(?:[,.](\d{{2}}))?", span)
        whole = amount.group(1)
        whole = f"{int(whole.replace('.', '')):,}" if "." in whole else whole
        cents = re.search(r"(\d{1,2})\s?(?:Cent|ct)$", span)      # '1 Euro 50 Cent' → '€1.50'
        fraction = f"{int(cents.group(1)):02d}" if cents else amount.group(2)
        return f"€{whole}" + (f".{fraction}" if fraction else "")
    return span


_ORDINAL_BEFORE = re.compile(
    r"(?:^|(?<!\d\.\s)(?<!\d\.)[-–—:(]|(?i:\b(?:jede[nmrs]?|im|am|der|die|das|den|dem|des|zur|"
    r"zum|vom|ins|seit|für|fuer|in|an|pro|je|ihr|ihre|unser|unsere))\s*)\s*$")
"""What comes before a number that counts a noun ('jeden 1. Dienstag', 'der 1. Klasse', '1.
Klasse' at the start); a label noun does not ('Gleis 3. Zug fällt aus': a sentence ends), nor
'ab'/'bis' ('bis 12. Samstag geschlossen') or a range's first number ('3.-5. Klasse')."""
_H_CLOCK_BEFORE = re.compile(r"(?i:\b(ab|um|von|bis))\s*$")
"""The words after which hours marked 'h' alone are a clock time ('ab 18h'; not 'täglich 24h'
or 'Parken bis 2 h')."""
_IN_PLACE = frozenset({"daterange", "date", "numericdate", "dayrange", "namerange", "dayname",
                       "day", "timerange", "price", "francs", "cents", "clock", "duration"})
"""The spans `render_in_place` writes the English way: days, dates, times and prices."""


def _spans(text: str, time_style: str) -> list[tuple[int, int, str, str]]:
    """(start, end, rendered, kind) of each protected span, in text order, none overlapping:
    the sign spans of `_SIGN` (kind: its group) and the numbers and codes of `_PROTECTED`
    (kind 'clock' where rendered as a time, else 'number')."""
    # an ALL CAPS sign (MO-FR 8-20 UHR) is matched as if written in title case (Mo-Fr 8-20
    # Uhr) and, where that finds nothing, as written (2. OG)
    titled = text.title()
    probes = ([titled] if style_of(text) == "upper" and len(titled) == len(text) else []) + [text]
    spans: list[tuple[int, int, str, str]] = []

    def add(a: int, b: int, rendered: str, kind: str) -> None:
        if text[a:b].strip() and not any(a < y and x < b for x, y, _, _ in spans):
            spans.append((a, b, rendered, kind))

    for probe in probes:
        at = 0
        while (match := _SIGN.search(probe, at)) is not None:
            kind, uhr_after = match.lastgroup, _UHR_AFTER.match(probe, match.end()) is not None
            if (kind == "timerange" and not _is_time_range(match.group(), uhr_after,
                                                           probe[:match.start()])) or \
                    (kind == "duration" and len(text.split()) > 5) or \
                    (kind == "ordinal" and not _ORDINAL_BEFORE.search(probe, 0, match.start())):
                at = match.start() + 1  # not a time ('Wagen 14 – 1. Klasse') or no ordinal
                continue                # ('Gleis 3. Zug'): what follows is searched again
            add(*match.span(), render_sign_span(kind, match.group(), time_style, uhr_after),
                kind)
            at = match.end()
    hours = _hours_of_runs(text, probes)
    for match in _PROTECTED.finditer(text):        # codes (RE7, ICE4) as written
        clock_before = _TIME_WORD_BEFORE.search(text, 0, match.start()) is not None
        hour_word = _H_CLOCK_BEFORE.search(text, 0, match.start())
        span = match.group().strip()
        after_number = re.search(r"\d[\s/]*$", text[:match.start()]) is not None
        rendered = render_protected(span, time_style, clock_before, match.start() in hours,
                                    hour_word.group(1).lower() if hour_word else "",
                                    after_number)
        add(*match.span(), rendered, "clock" if rendered != span and (
            re.search(r"\d:\d\d", rendered) or rendered.endswith(("am", "pm"))) else "number")
    return sorted(spans)


def split_protected(text: str, time_style: str = "24h") -> list[tuple[str, bool]]:
    """Chunks of text, each flagged True when it passes through unchanged (numbers, codes) or
    is rendered by rule (days, times, floors, prices: `render_sign_span`)."""
    chunks: list[tuple[str, bool]] = []
    position = 0
    for start, end, rendered, _kind in _spans(text, time_style):
        if start < position:
            continue
        before = text[position:start].strip()
        if before == "/" and chunks and chunks[-1][1]:     # 'Sa/So': one span, 'Sat/Sun'
            chunks[-1] = (f"{chunks[-1][0]}/{rendered}", True)
            position = end
            continue
        if before:
            chunks.append((before, False))
        chunks.append((rendered, True))
        position = end
    rest = text[position:].strip()
    if rest:
        chunks.append((rest, False))
    return chunks


def render_in_place(text: str, time_style: str = "24h") -> str:
    """The text as written, with its days, dates, times and prices written the English way
    where they stand (an English sign with German times: 'Happy Hour (17–19 Uhr)' → 'Happy
    Hour (17:00–19:00)'); in an ALL CAPS text, in capitals."""
    out, position = [], 0
    for start, end, rendered, kind in _spans(text, time_style):
        if start < position or kind not in _IN_PLACE:
            continue
        out += [text[position:start], rendered]
        position = end
    shown = "".join(out) + text[position:]
    return shown.upper() if style_of(text) == "upper" else shown


_HOUR_RUN = re.compile(
    rf"(?<![\d.,:])\d{{1,2}}(?:\s*(?:{_TIME_LIST}|[-–]|(?i:bis))(?:\s+(?i:von))?\s*"
    r"\d{1,2}(?:[.:]\d{2})?)+\s?(?i:uhr)\b")
"""A run of hours that ends in Uhr ('8 bis 12 und von 15 bis 19 Uhr', '12, 14 und 16 Uhr')."""
_HOUR_RUN_CONTEXT = re.compile(
    r"(?:^|:|(?i:\b(?:heute|morgen|werktags|wochentags|feiertags|nachts|morgens|vormittags|"
    rf"mittags|nachmittags|abends)|uhr\s*{_TIME_LIST}))\s*[:,]?\s*$")
"""What a run of hours follows when its hours are times: the start of the text or a colon, a
word of the day, or an earlier run ('13 bis 15 Uhr und 22 bis 7 Uhr'); with _TIME_WORD_BEFORE
(von, ab, um, zwischen, täglich, a day). Not a label: 'Gleis 3 und 4 bis 18 Uhr'."""


def _hours_of_runs(text: str, probes: list[str]) -> set[int]:
    """Where the bare hours of runs of hours that end in Uhr start, for runs in a time context
    (`_HOUR_RUN_CONTEXT`); the run's last hour, with Uhr, is rendered as it is anyway."""
    starts: set[int] = set()
    for run in _HOUR_RUN.finditer(text):
        if not any(_TIME_WORD_BEFORE.search(p, 0, run.start()) or
                   _HOUR_RUN_CONTEXT.search(p, 0, run.start()) for p in probes):
            continue
        starts.update(run.start() + hour.start()
                      for hour in re.finditer(r"\d{1,2}(?:[.:]\d{2})?", run.group()))
    return starts


def render_protected(span: str, time_style: str = "24h", clock_before: bool = False,
                     uhr_later: bool = False, hour_word: str = "",
                     after_number: bool = False) -> str:
    """'18 Uhr' -> '18:00' (or '6 pm'), '9:30 UHR' -> '9:30', and after um/ab/von/bis a
    clock time without Uhr ('von 9.30 bis 17.30 Uhr' → 9:30; not 'Kaffee 2.50'); with
    `uhr_later` (a range's Uhr comes later: 'von 14 bis 16 Uhr') a whole hour too (not
    'Kaffee 2.50 bis 11 Uhr'); hours marked 'h' after ab/um/von (`hour_word`; after bis from
    5) and under 24 ('ab 18h'; not 'täglich 24h', 'bis 2 h'); a range of numbers with an en
    dash, unless `after_number` (a number stands just before it: 'Tel. 030 1234-5678'); others
    unchanged."""
    time = re.fullmatch(r"(\d{1,2})[.:](\d{2})", span)
    if clock_before and time and int(time.group(1)) <= 24 and int(time.group(2)) < 60:
        return clock(span, time_style)
    marked = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?\s?[hH]", span)   # 'ab 18h', 'bis 20 h'
    if marked and hour_word and int(marked.group(1)) < 24 and int(marked.group(2) or 0) < 60 \
            and (hour_word != "bis" or int(marked.group(1)) >= 5):
        return clock(span.rstrip("hH ").strip(), time_style)
    hour = re.fullmatch(r"(\d{1,2})(,?)", span)
    if uhr_later and hour and int(hour.group(1)) <= 24:      # '12,' in '12, 14 und 16 Uhr'
        return clock(hour.group(1), time_style) + hour.group(2)
    if not span.endswith(("Uhr", "UHR")):
        # a range of numbers takes an en dash ('Schalter 5-8' → 'Counters 5–8', 'Größen
        # 36-42'); not a phone number or a code ('0761-12345', '12-4', '5-08', '2-105')
        numbers = re.fullmatch(r"([1-9]\d{0,3})-([1-9]\d{0,3})[:,.]?", span)
        if numbers and int(numbers.group(1)) < int(numbers.group(2)) and \
                len(numbers.group(2)) - len(numbers.group(1)) <= 1 and not after_number:
            return span.replace("-", "–")
        return span
    number = span[:-3].strip()
    if re.fullmatch(r"\d{1,2}(?:[:.]\d{2})?", number):
        return clock(number, time_style)
    return number


# the English names the rules write, lowercase as the model writes them
_EN_DAYS = tuple(dict.fromkeys(name.lower() for name in _DAY_NAMES.values()))
_EN_MONTHS = tuple(m.lower() for m in _MONTH_NAMES if m not in ("March", "May"))  # verbs too
_EN_SHORT = [day.lower() for day in _DAYS.values()] + [m[:3].lower() for m in _MONTH_NAMES]
_SHORT = rf"(?:{'|'.join(a for a in _EN_SHORT if a != 'may')}|sept)"      # 'may': a verb
_DAY_WORD = re.compile(rf"\b(?:{'|'.join(_EN_DAYS + _EN_MONTHS)})s?\b")
_SHORT_RANGE = re.compile(rf"\b{_SHORT}(?=\s?[-–/+]\s?{_SHORT}\b)|(?<=[-–/+])\s?{_SHORT}\b"
                          rf"|\b{_SHORT}(?=\.?\s\d)")
_RANGE_DASH = re.compile(rf"(?<=\d)-(?=\d)|(?<=\b(?:{'|'.join(a.capitalize() for a in _EN_SHORT)}))"
                         r"-(?=[A-Z])")


_NEXT_SENTENCE = re.compile(r"(?:\b([^\W\d_]+)|\d:\d\d|\d\.\d\d)[.!?]\s+[a-z]")
EN_ABBREVIATIONS = frozenset("approx ca e g i etc incl excl max min no nr st dr mr mrs ms vs "
                              "tel hbf str".split())


_EN_STOP = re.compile(r"([^\W\d_]*)[.!?](?=\s+\S)")


def english_sentences(english: str) -> int:
    """How many sentences an English text has: each '.', '!' or '?' before more text ends one,
    except an abbreviation's stop ('Approx. 10 min. please wait' is one)."""
    return 1 + sum(m.group(1).lower() not in EN_ABBREVIATIONS
                   for m in _EN_STOP.finditer(english))


def sentence_capitals(english: str) -> str:
    """A sentence after the first one starts with a capital ('... site. parents are' → '...
    site. Parents are', after a time or a price too: '... from 15:00. you can' → '... 15:00.
    You can'; not after 'approx.' or a number alone: 'ages 6. to 12')."""
    return _NEXT_SENTENCE.sub(lambda m: m.group() if (m.group(1) or "").lower() in
                              EN_ABBREVIATIONS else m.group()[:-1] + m.group()[-1].upper(),
                              english)


# English words a sign writes with fixed capitals ('no u-turns' → 'No U-turns', 'id required'
# → 'ID required'); 'pin' and 'it' stay out (verbs and pronouns more often than PIN and IT)
_FIXED_CASE = {w.lower(): w for w in (
    "ID", "IDs", "CCTV", "Wi-Fi", "VAT", "QR", "A&E", "X-ray", "X-rays", "GP", "GPs", "AED",
    "U-turn", "U-turns", "HGV", "HGVs", "ATM", "ATMs", "USB", "SIM", "MRI", "EU", "LPG", "EV",
    "OK", "WC", "WCs", "TV", "DVD", "SOS", "CO2", "T-shirt", "T-shirts", "T-bar",
    # holidays, languages and countries ('on easter monday', 'tours in english'), trains
    "Easter", "Christmas", "Whitsun", "Pentecost", "Advent", "English", "German", "French",
    "Italian", "Spanish", "Turkish", "Dutch", "Russian", "Arabic", "Ukrainian",
    "Germany", "Austria", "Switzerland", "Europe", "France", "Italy", "S-Bahn", "U-Bahn",
    "Dr", "DVDs", "CDs", "X-rayed",
    # places and peoples English writes with a capital ('the train to munich', 'rhine
    # cruises'): the exonyms, rivers, regions, and languages beyond the ones above
    *EXONYMS.values(), "Rhine", "Danube", "Elbe", "Moselle", "Alps", "Bavaria", "Bavarian",
    "Black Forest", "Baltic", "North Sea", "Austrian", "Swiss", "European", "Finnish",
    "Swedish", "Norwegian", "Danish", "Czech", "Greek", "Japanese", "Chinese", "Portuguese",
    "Hungarian", "Croatian", "Romanian", "Belgium", "Netherlands", "Denmark", "Sweden",
    "Norway", "Hungary", "Croatia", "Britain", "Catholic", "Protestant", "Jewish", "Muslim",
    "Christian")}
_FIXED_CASE["wifi"] = "Wi-Fi"
_FIXED_WORD = re.compile(rf"(?<![\w&-])(?:{'|'.join(re.escape(w) for w in _FIXED_CASE)})"
                         r"(?![\w&-])", re.IGNORECASE)


def _fixed_case(match) -> str:
    word = match.group()
    # .get: IGNORECASE also matches 'ı' and 'ſ', whose lower() is no key
    return _FIXED_CASE.get(word.lower(), word) if word in (word.lower(), word.capitalize()) \
        else word


_DAY_OR_MONTH = frozenset(w.lower() for w in (*_DAY_NAMES.values(), *_MONTHS.values(),
                                             *_DAYS.values()))
_CELSIUS = re.compile(r"°c\b")
_NEW_YEAR = re.compile(r"\bnew year(?='s\b|\b)")


def english_casing(english: str, source: str) -> str:
    """The model writes lowercase English: a sentence after the first one starts with a
    capital ('... site. parents are' → '... site. Parents are'; not after 'approx.'), days
    and months get theirs ('on tuesday' → 'on Tuesday', '(nov-mar)' → '(Nov–Mar)'; 'sun'
    only where the German has 'So'), words with fixed capitals get them ('u-turn' → 'U-turn',
    'wi-fi' → 'Wi-Fi'; holidays and languages: 'easter', 'english', 'new year'; '°C'; 'march'
    and 'may' where the German names März or Mai), and a range and a spaced dash take an en
    dash ('9:00-19:00' → '9:00–19:00', 'exit - keep clear' → 'exit – keep clear')."""
    def cap(match) -> str:
        word = match.group()
        return word[:len(word) - len(word.lstrip())] + word.lstrip().capitalize()

    english = _DAY_WORD.sub(cap, sentence_capitals(english))
    english = _FIXED_WORD.sub(_fixed_case, _SHORT_RANGE.sub(cap, english))
    english = _CELSIUS.sub("°C", _NEW_YEAR.sub("New Year", english))
    for german, month in (("März", "March"), ("Mai", "May")):    # verbs too: where named
        if re.search(rf"(?<![\w-]){german}\b", source, re.IGNORECASE):
            english = re.sub(rf"\b{month.lower()}\b", month, english)
    hours = re.search(r"\d", source) is not None   # 'So' a day: on a sign with numbers
    for german, short in _DAYS.items():
        if re.search(rf"(?<![\w-]){german.capitalize()}\b(?![-\w])"
                     + ("" if hours else _DAY_CONTEXT), source):
            english = re.sub(rf"\b{short.lower()}\b", short, english)
    return _RANGE_DASH.sub("–", english).replace(" - ", " – ")   # a spaced dash: en dash


# a decimal with its unit ('1,5 m', '7,5 t', '12,5 %'); not a list ('Gleis 1,2 und 3')
_DECIMAL = re.compile(r"(?<![\w.,-])\d+,\d+(?=\s?(?:%|°|(?:m|km|cm|mm|t|kg|g|l|ml|h|min|Std|"
                      r"Meter|Kilometer|Liter|Tonnen|Stunden|Minuten)\b))")


def english_numbers(english: str, source: str) -> str:
    """A German decimal comma the translation copied becomes a point ('1,5 Meter' → '1.5
    metres', '7,5 t' → '7.5 t'; prices are written by rule before), and a percentage loses
    its space ('20 % auf alles' → '20% off everything')."""
    for number in set(_DECIMAL.findall(source)):
        english = re.sub(rf"(?<![\d.,]){re.escape(number)}(?![\d,])",
                         number.replace(",", "."), english)
    return re.sub(r"(?<=\d) %", "%", english)
