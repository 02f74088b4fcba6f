"""Config sections: the seeing path: how models run, which ones, where frames come from and go, the
two deadlines, when recognition runs, and the detector and recognizer."""

from device.config_schema.keys import Key, Section

RUNTIME = Section("runtime", "How TFLite models are run.", (
    Key("backend", str, "auto",
        "Interpreter: 'litert' (ai-edge-litert, fast int8), 'tflite' (tflite-runtime 2.14), "
        "or 'auto' (LiteRT when importable, else tflite-runtime).",
        choices=("auto", "litert", "tflite")),
    Key("num_threads", int, 2, "CPU threads per interpreter.", min=1, max=64),
    Key("opencv_threads", int, 1, "OpenCV's own worker threads for the image operations of "
        "the frame path and recognition (process-wide; 0: OpenCV's default, one per core). On "
        "small frames its parallel loops cost more CPU waking workers than they save: 1 "
        "measured 6 points less CPU on the moving view and 4 on the steady one, new-recognition "
        "p95 +2 ms (BENCHMARKS.md, issue 15).", min=0, max=64),
))

MODELS = Section("models", "Where the model store lives and which versions run.", (
    Key("store", str, "",
        "Model store directory (models/<name>/<version>/). Empty: the per-user store "
        "($XDG_DATA_HOME/edgelens/models, ~/.local/share/edgelens/models), seeded with the "
        "versions bundled with the installation; updates and pointer files go there, never "
        "into the installation."),
    Key("recognizer", str, "recognizer",
        "Name of the text-line recognizer model in the store."),
    Key("recognizer_version", str, "",
        "Recognizer version to load; empty: the active version (or newest)."),
))

SOURCE = Section("source", "Where frames come from.", (
    Key("uri", str, "synthetic",
        "webcam:N, video:PATH, images:DIR or synthetic[:SEED] (generated signs, moving camera)."),
    Key("fps", float, 30.0, "Frame rate of synthetic and image-folder sources, and the "
        "camera's cap: requested from the camera, and frames it delivers beyond this rate "
        "are skipped (counted as frames_over_rate). Part of the operating point "
        "(`edgelens calibrate`).", min=1.0, max=240.0),
    Key("realtime", bool, True, "Pace files and generated scenes at their frame rate "
        "(false: as fast as possible).", ),
    Key("max_backoff_s", float, 2.0, "Longest wait between attempts to reopen a failed "
        "source.", min=0.01, max=60.0),
    Key("image_dwell_s", float, 4.0, "images:DIR shows each image this long (letterboxed to "
        "the first image's size), long enough to be read, translated and overlaid; the "
        "overlay starts empty on each new image.", min=0.0, max=600.0),
))

DISPLAY = Section("display", "Where shown frames go.", (
    Key("window", bool, False, "Open a window (the simulator); the service runs headless."),
    Key("record", str, "", "Write the overlaid video to this .mp4 file; empty: don't."),
    Key("snapshot_dir", str, "snapshots", "Folder for snapshots (key 's' in the window)."),
))

PIPELINE = Section("pipeline", "The live pipeline: two paths, two deadlines.", (
    Key("frame_budget_ms", float, 20.0,
        "Frame path budget: tracking + overlay + hand-off of every displayed frame.",
        min=1.0, max=1000.0),
    Key("recognition_budget_ms", float, 200.0,
        "Recognition path budget from capture to a shown result (detect, recognize, "
        "translate); older results are discarded.", min=10.0, max=10_000.0),
    Key("max_regions", int, 6, "At most this many text regions are recognized per run "
        "(largest first).", min=1, max=64),
    Key("region_ttl_s", float, 1.5, "A region not seen again by recognition for this long "
        "disappears.", min=0.1, max=60.0),
    Key("match_iou", float, 0.3, "A new result with at least this IoU to a shown region keeps "
        "that region's identity.", min=0.0, max=1.0),
    Key("hud", bool, True, "Show the heads-up display (fps, latency, misses)."),
    Key("tracker_scale", float, 0.5, "Optical flow runs on the frame scaled by this factor.",
        min=0.1, max=1.0),
))

RECOGNITION = Section("recognition", "When the recognition path runs: at full rate while the "
                      "view changes or new text appears, at a low rate once the view is steady "
                      "and every region was read; the overlay follows by tracking meanwhile "
                      "(device/live/rate.py).", (
    Key("on_change", bool, True, "Recognize at full rate only while the view changes; false: "
        "recognize continuously (every frame the recognition worker is free for)."),
    Key("steady_rate_hz", float, 2.0, "Re-check rate while the view is steady and read.",
        min=0.1, max=60.0),
    Key("motion_px", float, 6.0, "The view is moving when the tracker moves the frame's "
        "corners by more than this (pixels, on average) over motion_frames frames.",
        min=0.0, max=1000.0),
    Key("motion_frames", int, 5, "Frames over which motion_px is measured.", min=1, max=300),
    Key("drift_px", float, 16.0, "Recognize at once when the view moved by more than this "
        "(pixels) since the frame of the last complete result: new area came in.",
        min=0.0, max=10_000.0),
    Key("change_level", float, 20.0, "Recognize at once when the last read frame, tracked to "
        "now, and the current frame differ by more than this (0-255) in the mean or spread of "
        "a colour channel in some cell of a 16x9 grid (text appeared where the camera did not "
        "move).", min=0.0, max=255.0),
))

DETECTOR = Section("detector", "Finding text lines in a frame (int8 FCN + OpenCV post-processing).", (
    Key("model", str, "detector", "Name of the text-line detector model in the store."),
    Key("version", str, "", "Detector version to load; empty: the active version (or newest)."),
    Key("input_width", int, 0,
        "Detector resolution width; 0 (with input_height 0): the model's default operating "
        "point. A resolution the version ships (manifest 'resolutions'; 3.0.3: 640x352, "
        "480x288, 320x192) loads its own file; any other, sides multiples of 32, runs the "
        "default file resized (detector 3.0.1 and later; up to 1920x1088): e.g. 800x448 or "
        "960x544 on a 640x360 frame find smaller text and make more false boxes, at more "
        "time (line Hmean about unchanged on the validation photos: BENCHMARKS.md). More "
        "pixels find smaller text, fewer are faster.",
        min=0, max=1920),
    Key("input_height", int, 0,
        "Detector resolution height; 0: the model's default (see input_width).",
        min=0, max=1088),
    Key("keep_aspect", bool, True,
        "A frame whose shape differs from the detector's input (a portrait or 4:3 photo, "
        "a 4:3 camera) runs the model at a size of the frame's own shape with about as many "
        "pixels (sides multiples of 32; detector 3.0.1 and later), instead of squeezed into "
        "the input: text keeps its shape. On portrait crops of the validation photos line "
        "Hmean rises from 0.40 to 0.64 (9:16) and 0.52 to 0.65 (3:4) (BENCHMARKS.md). A "
        "16:9 frame runs as before. false: every frame squeezed to the input size."),
    Key("bin_threshold", float, -1.0,
        "Probability above which a map pixel counts as text kernel; -1: the model's own "
        "(manifest postprocessing.params).", min=-1.0, max=1.0),
    Key("box_threshold", float, -1.0,
        "A region is kept when its mean probability reaches this; -1: the model's own.",
        min=-1.0, max=1.0),
    Key("unclip_ratio", float, -1.0,
        "Each kernel rectangle grows by area * unclip_ratio / perimeter on every side; "
        "-1: the model's own.", min=-1.0, max=5.0),
    Key("min_area", float, -1.0, "Regions smaller than this (frame pixels²) are dropped; "
        "-1: the model's own.", min=-1.0),
    Key("max_regions", int, -1, "Most regions per frame (the highest-scoring are kept); "
        "-1: the model's own.", min=-1, max=1000),
))

RECOGNIZER = Section("recognizer", "Reading one text line.", (
    Key("min_confidence", float, 0.5,
        "Lines read with a lower confidence are dropped (noise, pictograms, unreadable "
        "text): not shown or translated by the pipeline, left out by `edgelens ocr` (unless "
        "--all), `translate-image` and the OCR benchmark. The one recognizer threshold: it "
        "replaces [pipeline] min_confidence and [translator] min_ocr_confidence.",
        min=0.0, max=1.0),
    Key("lexicon_prior", float, 5.0,
        "A word of 4+ letters the dictionary does not know is read as a known word one edit "
        "away when the frames make that word at least 1/lexicon_prior as likely "
        "(device.stages.lexicon; the translator's dictionary, once loaded); 0: words as "
        "read.", min=0.0, max=1000.0),
))
