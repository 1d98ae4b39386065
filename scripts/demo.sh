#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds stylize, gets weights and stylises the Tübingen photo
# in the style of The Starry Night at 512 px, with a progress bar and a JSON report.
#   scripts/demo.sh                      writes demo/tubingen_starry.png and demo/report.json
#   ITERATIONS=1000 scripts/demo.sh      the full neural-style default (about 15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
images=${IMAGES:-examples}  # shipped with the repository (examples/SOURCES.md)
mkdir -p demo
shallow=${SHARED:-../shared}/weights/vgg19-conv1-3-real.safetensors
weights=(--weights "$shallow" --content-layers relu3_2 --style-layers relu1_1,relu2_1,relu3_1)
if ./build/stylize weights info 2>/dev/null | grep -q "16 of 16 convolutions"; then
  weights=()
elif ./build/stylize weights fetch 2>demo/fetch.log; then
  weights=()
else
  # Say why (no network here, or a file at the default location that fetch does not replace unasked).
  reason=$(grep -m1 '^error: ' demo/fetch.log | cut -c8-) || reason="see demo/fetch.log"
  echo "demo: the full VGG19 was not fetched: $reason" >&2
  if [ -f "$shallow" ]; then
    # The real VGG19 up to conv3_4 (../shared/weights/SOURCES.md): a real painting style, from the
    # layers that file holds (README "Weights").
    echo "demo: using the real VGG19 layers conv1_1-conv3_4 in $shallow" >&2
  else
    echo "demo: no pretrained weights; using SYNTHETIC weights" >&2
    echo "demo: (the result shows the pipeline working, not a real painting style)" >&2
    ./build/stylize weights synth --force -o demo/vgg19-synthetic.safetensors
    weights=(--weights demo/vgg19-synthetic.safetensors)
  fi
fi
./build/stylize "$images/tubingen.jpg" "$images/starry_night.jpg" -o demo/tubingen_starry.png \
  --size 512 --iterations "${ITERATIONS:-200}" --report demo/report.json "${weights[@]}"
echo "demo: wrote demo/tubingen_starry.png and demo/report.json"
