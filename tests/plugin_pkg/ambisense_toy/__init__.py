"""A third-party ambisense plug-in: one format, one pipeline, one source, one sink."""
