"""German→English translation of sign text: phrasebook, LRU cache and a tiny int8 transformer.

    from device.stages.translate.translator import Translator
    translator = Translator.from_config(config)
    translator.translate("NOTAUSGANG").translation   # 'EMERGENCY EXIT'
"""
