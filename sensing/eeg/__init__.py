"""EEG: EDF/BDF I/O helpers, montages, preprocessing, artefact flags, features, seizure detection.

Everything here works chunk by chunk on :class:`~sensing.frames.Frames` of modality ``"eeg"``
(data in µV, shape ``(n_samples, n_channels)``), so live acquisition and replay share one path.
"""
