#!/bin/sh
# Builds the seed corpus of seatledger_decode_fuzz from the fixtures: each
# fixture once in structured mode and once in binary mode (see decode_fuzz.cpp
# for the input layout). Needs jq.
#   make_corpus.sh <fixtures dir> <corpus dir>
set -eu
fixtures=${1:?fixtures dir}
corpus=${2:?corpus dir}
mkdir -p "$corpus"
for file in "$fixtures"/*.json; do
  name=$(basename "$file" .json)
  type=$(jq -r .type "$file")
  case "$type" in
    seatledger.member.*|seatledger.org.*) topic=0 ;;
    seatledger.subscription.*|seatledger.license.*) topic=1 ;;
    seatledger.catalog.*) topic=2 ;;
    seatledger.internal.*) topic=3 ;;
    *) echo "unknown type $type in $file" >&2; exit 1 ;;
  esac
  # Structured: the topic byte, then the record value.
  { printf "\\$(printf %03o "$topic")"; cat "$file"; } \
    > "$corpus/$name.structured"
  # Binary: topic byte | 4, `key=value` header lines, an empty line, data.
  {
    printf "\\$(printf %03o $((topic | 4)))"
    jq -j '"ce_specversion=\(.specversion)\nce_id=\(.id)\n"
           + "ce_source=\(.source)\nce_type=\(.type)\nce_time=\(.time)\n"
           + "content-type=application/json\n\n"' "$file"
    jq -c -j .data "$file"
  } > "$corpus/$name.binary"
done
echo "wrote $(ls "$corpus" | wc -l) seeds to $corpus"
