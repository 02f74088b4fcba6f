"""The SentencePiece tokenizer of the translator (one shared model for German and English)."""

from __future__ import annotations

from pathlib import Path

from device.errors import ModelError

PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Tokenizer:
    """Text ↔ piece ids. German is given already folded and lowercased (normalize.model_text)."""

    def __init__(self, path: str | Path):
        import sentencepiece as spm
        self.path = str(path)
        try:
            self._sp = spm.SentencePieceProcessor(model_file=self.path)
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"cannot load the SentencePiece model {path}: {exc}; reinstall "
                             "the translator from the model store") from exc
        if self._sp.eos_id() != EOS or self._sp.bos_id() != BOS or self._sp.pad_id() != PAD:
            raise ModelError(f"{path}: special ids differ from pad=0 unk=1 bos=2 eos=3; "
                             "this tokenizer does not belong to the translator")

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self._sp.decode([i for i in ids if i > EOS])
