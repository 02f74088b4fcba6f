"""Config sections: what is done with the text read: translation and the spoken translation."""

from device.config_schema.keys import Key, Section

TRANSLATOR = Section("translator", "German→English translation of recognized lines: cache, "
                     "phrasebook, then the int8 transformer.", (
    Key("model", str, "translator", "Name of the translator model in the store."),
    Key("version", str, "", "Translator version to load; empty: the active version (or newest)."),
    Key("beam_size", int, 1, "Beam width of the decoder; 1 is greedy (fastest).", min=1, max=8),
    Key("beam_below", float, 0.9, "A greedy model answer less confident than this is decoded "
        "again with a beam of 3 and the surer of the two is kept (one more decoding, within "
        "budget_ms); 0: never.", min=0.0, max=1.0),
    Key("max_tokens", int, 0, "Longest translation in tokens; 0: as long as the model allows "
        "(23).", min=0, max=64),
    Key("cache_size", int, 512, "Recent translations kept in the LRU cache (0: no cache).",
        min=0, max=1_000_000),
    Key("min_model_confidence", float, 0.2, "Model translations whose mean token probability "
        "is lower are refused (original text kept).", min=0.0, max=1.0),
    Key("max_input_chars", int, 300, "Longer texts are not translated (original text kept). "
        "A text longer than the model reads (23 tokens) is translated sentence by sentence.",
        min=1, max=10_000),
    Key("budget_ms", float, 40.0, "Time one translation may take, and what the recognition "
        "path keeps of its budget for translating (it replaces [pipeline] "
        "translate_budget_ms); decoding that would run past it stops and the original text "
        "is kept.", min=1.0, max=10_000.0),
    Key("use_phrasebook", bool, True, "Look exact entries up: the sign book a translator "
        "version ships (whole sign texts of its register, before the model) and the "
        "dictionary (see model_first); false: neither."),
    Key("gloss_below_confidence", float, 0.3, "A model translation less confident than this "
        "yields to a word-by-word dictionary gloss (compounds split) when every word is "
        "covered.", min=0.0, max=1.0),
    Key("split_below_confidence", float, 0.8, "A model translation of a text with several "
        "sentences or clauses (after . ! ? , ; : or a spaced dash) less confident than this is "
        "read again clause by clause, and that answer is shown when every clause is surer "
        "(each costs one more decoding, within budget_ms); 0: never.",
        min=0.0, max=1.0),
    Key("model_first", bool, True, "Ask the model before the phrasebook (for a model trained "
        "on sign register, like translator 2.x and 3.x); a model answer less confident than "
        "0.5 yields to a dictionary entry for the same text. false: the phrasebook first "
        "(1.x)."),
    Key("time_style", str, "24h", "How times on signs are written in English: '24h' "
        "(9–18 Uhr → 9:00–18:00) or '12h' (→ 9 am–6 pm). Days become Mon–Fri / Monday to "
        "Friday, floors 1st floor / Ground floor / Basement, prices €2.50.",
        choices=("24h", "12h")),
    Key("show_glosses", bool, True, "Show word-by-word glosses (source 'gloss', confidence "
        "0.3, drawn as uncertain in the overlay); false: keep such a text as read."),
    Key("uncertain_below", float, 0.5, "Model translations less confident than this are "
        "marked uncertain (drawn like glosses, with an amber outline): on the sign and "
        "sentence validation sets, answers under 0.5 matched no reference.",
        min=0.0, max=1.0),
    Key("dictionary", str, "/usr/share/trans/de-en", "The ding German-English dictionary "
        "(Debian package trans-de-en) the phrasebook is built from."),
    Key("phrasebook_cache", str, "", "Directory for the built phrasebook; empty: "
        "$XDG_CACHE_HOME/edgelens or ~/.cache/edgelens."),
))

AUDIO = Section("audio", "Spoken translations: the on-device voice (espeak-ng), the output "
                "stream, and ducking while the wearer speaks (device/audio/).", (
    Key("speak", str, "off", "'off'; 'new': say each new translation once when it is shown "
        "(not again while the same sign stays in view); 'on-request': say the newest "
        "translation in view when asked.", choices=("off", "new", "on-request")),
    Key("output_device", str, "", "Output device: empty for the default, an index, or part "
        "of a name (`python -m sounddevice` lists them)."),
    Key("input_device", str, "", "Microphone for ducking: empty for the default, an index, "
        "or part of a name."),
    Key("output_latency_ms", float, 50.0, "Audio buffered ahead of the output (less: speech "
        "starts sooner, but a busy CPU makes it stutter; counted in audio_underflows).",
        min=1.0, max=1000.0),
    Key("voice_engine", str, "auto", "'library' (libespeak-ng in-process), 'command' "
        "(espeak-ng --stdout per utterance) or 'auto' (the library when it loads).",
        choices=("auto", "library", "command")),
    Key("voice", str, "en-us", "espeak-ng voice (espeak-ng --voices=en lists them)."),
    Key("words_per_minute", int, 170, "Speaking rate.", min=80, max=450),
    Key("queue_size", int, 2, "Utterances waiting to be said; when full, the oldest is "
        "dropped (counted in audio_dropped_stale).", min=1, max=16),
    Key("repeat_after_s", float, 30.0, "The same text is not said again within this time "
        "(a sign that leaves the view and comes back).", min=0.0, max=86_400.0),
    Key("duck", bool, True, "Listen to the microphone: while the wearer speaks, queued speech "
        "waits and playing speech fades down."),
    Key("duck_gain", float, 0.15, "Level of playing speech while the wearer speaks (1.0: "
        "unchanged).", min=0.0, max=1.0),
    Key("fade_ms", float, 150.0, "Time a fade down or back up takes.", min=1.0, max=5000.0),
    Key("vad_min_dbfs", float, -45.0, "Microphone blocks quieter than this are never speech "
        "(dBFS).", min=-100.0, max=0.0),
    Key("vad_start_ms", float, 60.0, "Voiced audio for this long means the wearer speaks.",
        min=20.0, max=2000.0),
    Key("resume_after_ms", float, 500.0, "Speech resumes after the wearer was quiet this "
        "long.", min=20.0, max=10_000.0),
    Key("max_wait_s", float, 5.0, "Queued speech waiting longer than this for the wearer "
        "is dropped (counted in audio_dropped_waited).", min=0.0, max=600.0),
    Key("soundtrack", str, "", "Also write what is said to this WAV file, each utterance at "
        "the video frame it started on (edgelens demo --speak sets it); empty: don't."),
))
