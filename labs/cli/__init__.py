"""The ``lab`` command: a thin layer mapping flags to library calls."""
