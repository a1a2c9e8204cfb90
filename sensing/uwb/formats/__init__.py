"""UWB/radar capture formats: DecaRanging CIR text logs (:mod:`.decaranging`), Acconeer
A111/A121 HDF5 (:mod:`.acconeer_h5`) and NumPy ``.npz`` replay (:mod:`.npz`)."""
