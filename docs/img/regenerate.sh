#!/usr/bin/env sh
# Regenerates every picture in README.md and docs/plots.md from bundled or simulated
# captures, with the same commands a user runs (needs the plot extra:
# pip install -e '.[plot]'). Run from anywhere: sh docs/img/regenerate.sh
set -eu
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# WiFi CSI: the bundled ESP32 sample (a person breathing at 15/min), detectors run on the fly
ambisense plot agent/samples/esp32_breathing_15bpm.csv --detect --dpi 70 -o docs/img/wifi_csi.png
# WiFi CSI with a fall: a simulated activity capture (seeded), the opt-in fall pipeline
ambisense simulate csi-activity --seed 1 --duration-s 60 --falls 1 --out "$tmp/fall.csv" >/dev/null
ambisense plot "$tmp/fall.csv" --detect --pipeline wifi_motion --pipeline wifi_fall --dpi 70 \
  -o docs/img/wifi_fall.png
# EEG: the bundled simulated scalp EEG with two seizures
ambisense plot agent/samples/eeg_seizure_demo.edf --detect --dpi 70 -o docs/img/eeg.png
# the HTML report of both bundled samples (not committed: it embeds the plots, ~0.5 MB)
ambisense report agent/samples/esp32_breathing_15bpm.csv agent/samples/eeg_seizure_demo.edf \
  -o "$tmp/report.html"
echo "pictures written to docs/img/"
