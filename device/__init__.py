"""edgelens on the glasses: camera → detect → recognize → translate → overlay."""

__version__ = "0.1.0"
