#!/usr/bin/env python3
"""record_kill_test.py KNOTMAT SIMCOMPARE: kill -9 the recorder at 20 random
moments of a live 100 Hz simulated session, 12 times with `record` and 8 with
`run --record`. After `recover` every file passes `check`, holds bit for bit
the simulator's frames, and loses at most the sync interval (0.25 s by
default) plus one frame: the last frame on disk reached the recorder no more
than 0.26 s before the kill (both times CLOCK_MONOTONIC)."""
import os, random, signal, subprocess, sys, tempfile, time

KM, CMP = sys.argv[1], sys.argv[2]
SYNC_S, FRAME_S = 0.25, 0.01
random.seed(4242)
fail = 0
worst = 0.0
with tempfile.TemporaryDirectory() as d:
    for i in range(1, 21):
        path = os.path.join(d, f"{i}.kmr")
        fixed = os.path.join(d, f"{i}.fixed.kmr")
        src = f"sim://release?seed={i}&duration=600"
        if i <= 12:
            cmd = [KM, "record", "-q", "-s", src, "-o", path]
        else:
            cmd = [KM, "run", "-s", src, "--audio", "none", "--record", path]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(1.2, 4.0))
        killed_ns = time.monotonic_ns()
        p.send_signal(signal.SIGKILL)
        p.wait()
        rec = subprocess.run([KM, "recover", path, "-o", fixed], capture_output=True, text=True)
        if rec.returncode != 0:
            print(f"FAIL {i}: recover exit {rec.returncode}: {rec.stderr.strip()}")
            fail += 1
            continue
        chk = subprocess.run([KM, "check", fixed], capture_output=True, text=True)
        if chk.returncode != 0 or ": ok\n" not in chk.stdout:
            print(f"FAIL {i}: the recovered file does not pass check: {chk.stdout.strip()}")
            fail += 1
            continue
        cmp = subprocess.run([CMP, fixed, str(i)], capture_output=True, text=True)
        if cmp.returncode != 0:
            print(f"FAIL {i}: frames differ from the simulator: {cmp.stderr.strip()}")
            fail += 1
            continue
        n, last_host = (int(x) for x in cmp.stdout.split())
        lost_s = (killed_ns - last_host) / 1e9
        worst = max(worst, lost_s)
        how = cmd[1]
        if n == 0 or lost_s > SYNC_S + FRAME_S:
            print(f"FAIL {i} ({how}): {n} frames; the last reached the recorder {lost_s:.3f} s "
                  f"before the kill (limit {SYNC_S + FRAME_S:.2f} s)")
            fail += 1
        else:
            print(f"ok   {i} ({how}): {n} frames bit-exact; lost the last {lost_s:.3f} s")
print(f"{20 - fail} passed, {fail} failed; worst loss {worst:.3f} s")
sys.exit(1 if fail else 0)
