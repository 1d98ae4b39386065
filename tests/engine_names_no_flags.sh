#!/bin/sh
# Fails when an engine source file has a string literal naming a command-line flag ("--size"):
# engine messages name request fields with field("size"), and each front-end renders them.
cd "$1" && shift
if grep -nE '"[^"]*--[a-z]' "$@"; then
  echo "engine messages above name command-line flags; use field(\"name\") instead" >&2
  exit 1
fi
echo "1 passed, 0 failed"
