#!/bin/bash
# A line reader in canonical mode: every line it reads goes, byte for byte, to "$1".
# SLEEP=N: sleep N seconds before reading (a program that is busy, then reads).
# NOECHO=1: `stty -echo` first (a password-style reader: nothing shows on screen).
out=$1
if [ "${NOECHO:-}" = 1 ]; then stty -echo; fi
if [ -n "${SLEEP:-}" ]; then sleep "$SLEEP"; fi
printf 'reading\n'
while IFS= read -r line; do printf '%s\n' "$line" >>"$out"; done
