"""UWB/radar pipelines, one module each: ``breathing`` (``uwb_breathing``), ``presence``
(``uwb_presence``), ``link`` (``uwb_link``: LOS/NLOS), ``fall`` (``uwb_fall``)."""
