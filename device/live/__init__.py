"""The live path, in data-flow order: sources and capture, tracking, recognition worker, overlay, display, the pipeline that joins them."""
