#!/usr/bin/env bash
# replay-compare: `voxtap replay` side by side with tshark and the I/O floor, on the same
# generated capture, in interleaved rounds (so a busy host slows every contender alike).
#
#   perf/replay/compare.sh [CALLS] [TALK_SECS] [ROUNDS] [WORKERS]   (default 1000 10 3, and
#                                                                  voxtap's own worker count)
#
# - voxtap: `voxtap replay --quiet --out DIR capture.pcap` (with `--workers WORKERS` if given),
#   every stereo WAV and the catalog written to a tmpfs (/dev/shm);
# - tshark: `tshark -q -z sip,stat -z rtp,streams -r capture.pcap`, which writes no audio;
# - I/O floor: reading the capture (cat > /dev/null) plus writing as many WAV bytes as voxtap
#   wrote to the same tmpfs (dd).
# Prints a Markdown table of wall-clock seconds and packets per second, with the ratios.
set -euo pipefail

calls=${1:-1000}
talk=${2:-10}
rounds=${3:-3}
workers=${4:-}
if [[ -n "$workers" && "$workers" == *[!0-9]* ]]; then
  echo "WORKERS must be a number, not $workers" >&2
  exit 2
fi
workers_args=()
workers_shown=${workers:-default}
[ -z "$workers" ] || workers_args=(--workers "$workers")
root=$(cd "$(dirname "$0")/../.." && pwd)
work=/dev/shm/voxtap-replay-compare
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

echo "# command: perf/replay/compare.sh $calls $talk $rounds${workers:+ $workers}"
cargo build --release --quiet -p voxtap -p voxtap-gen --manifest-path "$root/Cargo.toml"
voxtap="$root/target/release/voxtap"
"$root/target/release/voxtap-gen" --scenario concurrent --calls "$calls" --talk-secs "$talk" \
  --out "$work/capture.pcap" >/dev/null
packets=$(capinfos -c -M "$work/capture.pcap" 2>/dev/null | awk -F: '/Number of packets/ {gsub(/ /, "", $2); print $2}')
packets=${packets:-0}
bytes=$(stat -c %s "$work/capture.pcap")

secs() { # run "$@" and print its wall-clock seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

declare -a tv tt tf
for r in $(seq 1 "$rounds"); do
  rm -rf "$work/out"
  tv[$r]=$(secs "$voxtap" replay --quiet "${workers_args[@]}" --out "$work/out" "$work/capture.pcap")
  wav_bytes=$(find "$work/out/recordings" -name '*.wav' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  rm -rf "$work/out"
  if command -v tshark >/dev/null; then
    tt[$r]=$(secs tshark -q -z sip,stat -z rtp,streams -r "$work/capture.pcap")
  else
    tt[$r]=nan
  fi
  floor() {
    cat "$work/capture.pcap" >/dev/null
    dd if=/dev/zero of="$work/floor.bin" bs=1M count=$((wav_bytes / 1048576 + 1)) status=none
    rm -f "$work/floor.bin"
  }
  tf[$r]=$(secs floor)
done

range() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f–%.2f", lo, hi}'; }
pps() { printf '%s\n' "$@" | sort -g | awk -v p="$packets" 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f–%.2f M", p/hi/1e6, p/lo/1e6}'; }

echo
echo "capture: $calls concurrent G.711 calls, $talk s talk, $packets packets, $((bytes / 1048576)) MiB; WAV written: $((wav_bytes / 1048576)) MiB"
echo
echo "| contender | seconds | packets/s |"
echo "|---|---:|---:|"
echo "| voxtap replay (WAV + catalog), workers: $workers_shown | $(range "${tv[@]}") | $(pps "${tv[@]}") |"
echo "| tshark -z sip,stat -z rtp,streams (no audio) | $(range "${tt[@]}") | $(pps "${tt[@]}") |"
echo "| I/O floor (read capture + write the WAV bytes) | $(range "${tf[@]}") | $(pps "${tf[@]}") |"
echo
best() { printf '%s\n' "$@" | sort -g | head -1; }
echo "tshark / voxtap: $(echo "$(best "${tt[@]}") / $(best "${tv[@]}")" | bc -l | xargs printf '%.1f')x;" \
  "voxtap / I/O floor: $(echo "$(best "${tv[@]}") / $(best "${tf[@]}")" | bc -l | xargs printf '%.1f')x (best rounds)"
