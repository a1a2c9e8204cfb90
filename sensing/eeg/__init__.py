"""EEG: preprocessing, artefact flags, features, seizure detection (EDF/BDF I/O, headers and
montages live with the format, in :mod:`sensing.formats.edf`).

Everything here works chunk by chunk on :class:`~sensing.frames.Frames` of modality ``"eeg"``
(data in µV, shape ``(n_samples, n_channels)``), so live acquisition and replay share one path.
"""
