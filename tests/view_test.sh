#!/usr/bin/env bash
# view_test.sh KNOTMAT: knotmat run --view driven in a real terminal (tmux):
# the heatmap drawn with half blocks in 256 colours and in 24-bit colour,
# the hold timer and the events beneath, redrawn to the new size when the
# window is resized, the session's summary intact afterwards (no frames lost
# to the view), and plain status lines when stdout is not a terminal.
set -u
KM=$1
command -v tmux >/dev/null || { echo "tmux is not installed"; exit 77; }
T=$(mktemp -d)
S=kmview$$
trap 'tmux kill-session -t ${S}tc 2>/dev/null; tmux kill-session -t $S 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
blocks() { grep -o '▀' "$1" | wc -l; }
widest() { /usr/bin/python3 -c 'import sys; print(max((len(l.rstrip("\n")) for l in open(sys.argv[1], encoding="utf-8")), default=0))' "$1"; }

SRC='sim://?scenario=release&seed=7'
tmux new-session -d -s $S -x 100 -y 40 \
  "'$KM' run --view --audio none --source '$SRC' --duration 16 2>'$T/err'; sleep 60"
sleep 11
tmux capture-pane -t $S -p >"$T/screen"
tmux capture-pane -t $S -p -e >"$T/screen.esc"
n=$(blocks "$T/screen")
check "heatmap drawn with half blocks ($n)" test "$n" -ge 1500
check "256-colour cells" grep -q $'\e\\[38;5;[0-9]*m' "$T/screen.esc"
check "status line" grep -qE "t= *[0-9.]+s +[0-9.]+ fps  dropped 0" "$T/screen"
check "hold timer against the limit" grep -qE "hold +0:[0-9]{2} at \([0-9]+, [0-9]+\) mm .* limit 90 s" "$T/screen"
check "last events listed" grep -q "on_target" "$T/screen"
check "hold marked on the map" grep -q "O" "$T/screen"
tmux resize-window -t $S -x 60 -y 24
sleep 1.5
tmux capture-pane -t $S -p >"$T/small"
n2=$(blocks "$T/small")
w=$(widest "$T/small")
check "redrawn smaller after a resize ($n2 blocks, $w columns)" test "$n2" -ge 300 -a "$n2" -lt "$n" -a "$w" -le 60
sleep 5
tmux capture-pane -t $S -p -J >"$T/summary"
check "summary after the view: nothing dropped" grep -qE "detector lost 0, recorder lost 0, 0 missing upstream" "$T/summary"

# 24-bit colour where the terminal says so
tmux new-session -d -s ${S}tc -x 80 -y 30 \
  "COLORTERM=truecolor '$KM' run --view --audio none --source '$SRC' --duration 6 2>/dev/null; sleep 30"
sleep 3
tmux capture-pane -t ${S}tc -p -e >"$T/tc.esc"
check "24-bit colour cells" grep -q $'\e\\[38;2;[0-9]*;[0-9]*;[0-9]*m' "$T/tc.esc"
tmux kill-session -t ${S}tc 2>/dev/null
tmux kill-session -t $S 2>/dev/null

# not a terminal: status lines
"$KM" run --view --audio none --source "$SRC" --duration 2.5 >"$T/pipe" 2>"$T/pipe.err"
check "piped: status lines" grep -qE "^t= +[0-9.]+s +[0-9.]+ fps" "$T/pipe"
check "piped: says why" grep -q "stdout is not a terminal; status lines instead" "$T/pipe.err"
check "piped: no escape codes" bash -c "! grep -q $'\e\\[' '$T/pipe'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
