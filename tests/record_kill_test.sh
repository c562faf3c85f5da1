#!/usr/bin/env bash
# record_kill_test.sh KNOTMAT SIMCOMPARE: kill -9 the recorder at 20 random
# moments of a live 100 Hz simulated session. After `recover` every file
# passes `check` and holds, bit for bit, every frame up to the last sync
# point (sync every 1 s: at least (time alive - 1 s - start-up) x 100 frames).
set -u
KM=$1; CMP=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0 fail=0
RANDOM=4242
for i in $(seq 1 20); do
  delay=$(( 1200 + RANDOM % 2800 ))        # 1.2 - 4.0 s
  "$KM" record -q -s "sim://release?seed=$i&duration=600" -o "$T/$i.kmr" 2>/dev/null &
  pid=$!
  start=$(date +%s%N)
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -9 $pid; wait $pid 2>/dev/null
  alive_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  "$KM" check "$T/$i.kmr" > "$T/check$i" 2>&1; pre=$?
  if ! "$KM" recover "$T/$i.kmr" -o "$T/$i.fixed.kmr" > "$T/rec$i" 2>&1; then
    echo "FAIL $i: recover: $(cat "$T/rec$i")"; fail=$((fail + 1)); continue
  fi
  if ! "$KM" check "$T/$i.fixed.kmr" > "$T/post$i" 2>&1 || ! grep -q ": ok$" "$T/post$i"; then
    echo "FAIL $i: recovered file does not pass check: $(cat "$T/post$i")"; fail=$((fail + 1)); continue
  fi
  n=$("$CMP" "$T/$i.fixed.kmr" "$i") || { echo "FAIL $i: frames differ from the simulator"; fail=$((fail + 1)); continue; }
  need=$(( (alive_ms - 1000 - 500) / 10 ))   # sync interval 1 s, start-up under 0.5 s
  [ $need -lt 0 ] && need=0
  if [ "$n" -ge "$need" ]; then
    pass=$((pass + 1))
    echo "ok   kill after ${alive_ms} ms: $( [ $pre -eq 0 ] && echo 'whole blocks' || echo 'torn tail'), recovered $n frames (>= $need), bit-exact"
  else
    fail=$((fail + 1)); echo "FAIL $i: killed after ${alive_ms} ms, only $n frames (< $need)"
  fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
