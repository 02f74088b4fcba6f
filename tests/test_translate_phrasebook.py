"""The phrasebook built from real dictionary lines, and the LRU cache."""

from device.stages.translate.cache import LRUCache
from device.stages.translate.phrasebook import Phrasebook
from translate_helpers import excerpt, need_dictionary


def test_built_once_then_read_from_its_cache(tmp_path):
    need_dictionary()
    source = excerpt(tmp_path / "de-en")
    book = Phrasebook.load(source, tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("phrasebook-*.sqlite"))
    assert len(cached) == 1 and book.source == str(cached[0])
    mtime = cached[0].stat().st_mtime_ns
    again = Phrasebook.load(source, tmp_path / "cache")
    assert again.source == str(cached[0]) and len(again) == len(book) > 50
    assert cached[0].stat().st_mtime_ns == mtime  # read, not rebuilt
    assert again.lookup("Ausgang") == book.lookup("Ausgang") == "exit"


def test_lookups_use_the_headword_sense_and_normalized_keys(tmp_path):
    need_dictionary()
    book = Phrasebook.load(excerpt(tmp_path / "de-en"), tmp_path / "cache")
    assert book.lookup("Ausgang") == "exit"
    assert book.lookup("AUSGAENGE") == book.lookup("Ausgänge") == "exits"
    assert book.lookup("Der Saal hat drei Ausgänge.") == "The hall has three exits."
    assert book.lookup("Apotheke") == "pharmacy"
    assert book.lookup("ziehen") == "pull"            # the sign sense, chosen by hand
    assert book.lookup("Wasserzimmer") is None
    assert book.is_german_word("ausgang") and book.is_compound("strassenhund")
    assert not book.is_compound("krzyzanowski")


def test_glosses_split_compounds_and_drop_endings(tmp_path):
    need_dictionary()
    book = Phrasebook.load(excerpt(tmp_path / "de-en"), tmp_path / "cache")
    dog, water = book.lookup("Hund"), book.lookup("Wasser")
    assert book.parts("hundewasser") == ["hund", "wasser"]
    assert book.gloss("Hundewasser") == f"{dog} {water}"
    assert book.gloss("Hunde im Wasser") == f"{book.lookup('Hunde')} in the {water}"
    assert book.gloss("Hund Krzyzanowski") is None


def test_a_missing_dictionary_is_a_clear_error(tmp_path):
    import pytest
    from device.errors import ModelError
    with pytest.raises(ModelError, match="trans-de-en"):
        Phrasebook.load(tmp_path / "nope", tmp_path / "cache")


def test_lru_cache_evicts_the_least_recent_and_counts():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)                       # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") == 3 and cache.get("a") == 1
    assert cache.stats() == {"size": 2, "capacity": 2, "hits": 3, "misses": 1}
    off = LRUCache(0)
    off.put("a", 1)
    assert off.get("a") is None and len(off) == 0


def test_a_dictionary_path_that_is_a_folder_is_a_model_error(tmp_path):
    # an IsADirectoryError escaped and ended the daemon on a config reload
    import pytest
    from device.errors import ModelError
    (tmp_path / "dict").mkdir()
    with pytest.raises(ModelError, match="cannot be read"):
        Phrasebook.load(tmp_path / "dict", tmp_path / "cache")

