"""ambisense models: training scripts, the export/quantisation toolchain and the shipped models.

Not part of the installed package (training needs scikit-learn/skl2onnx); the shipped
``*.onnx`` files and ``manifest.json`` are installed as data files and loaded at run time
by :mod:`agent.inference`. See ``models/README.md``.
"""
