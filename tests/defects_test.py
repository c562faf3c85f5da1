#!/usr/bin/env python3
"""defects_test.py KNOTMAT EDFCHECK: one regression test per row of the
adversarial-testing table (../shared/notes/defects-found.md, D1-D36), each
written to fail on the code that had the defect. Crafted recordings come
from tests/craft_kmr.py; full disks are a file-size limit (RLIMIT_FSIZE,
as a full disk: write() fails) and, when this runs as root, a real 2 MiB
tmpfs in a private mount namespace; device nodes are made with mknod in a
private directory (root only; skipped otherwise with the reason). Stalled
and closed pipes are real pipes, with timeouts on everything."""
import json, os, resource, shutil, signal, stat, subprocess, sys, tempfile, time

KM, EDFCHECK = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
T = tempfile.mkdtemp(prefix="km_defects_")
passed = failed = skipped = 0

def ok(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}")

def skip(name, why):
    global skipped
    skipped += 1
    print(f"skip {name}: {why}")

def run(*args, timeout=60, stdin=None, fsize=None, umask=None, env=None):
    def limits():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if umask is not None:
            os.umask(umask)
    try:
        p = subprocess.run([KM, *args], capture_output=True, text=True, timeout=timeout,
                           stdin=stdin, preexec_fn=limits, env=env)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return "timeout", "", ""

def P(name):
    return os.path.join(T, name)

def temps_left(d):
    return [f for f in os.listdir(d) if f.startswith(".")]

root = os.geteuid() == 0
subprocess.run([sys.executable, os.path.join(HERE, "craft_kmr.py"), P("craft")], check=True)
C = lambda n: os.path.join(P("craft"), n)
run("simulate", "-s", "release", "-d", "60", "--seed", "3", "-o", P("s.csv"))
run("record", "-q", "-s", f"file://{P('s.csv')}?speed=max", "-o", P("s60.kmr"),
    "--subject", "Jane Doe", "--session", "S-2024-03-05", "--operator", "Dr. Who",
    "--notes", "born 1970-01-02, MRN 12345")

# D1: blocks the reader refuses ------------------------------------------------
rc, out, err = run("record", "-q", "-s", f"file://{C('t_const.kmr')}?speed=max", "-o", P("c.kmr"))
rc2, out2, _ = run("check", P("c.kmr"))
ok("D1 constant timestamps: recorded and readable", rc2 == 0 and "200 frames" in out2, out2)
run("simulate", "--rows", "64", "--cols", "64", "-d", "30", "-o", P("s64.csv"))
with open(P("s64.csv")) as f, open(P("c64.csv"), "w") as g:
    for line in f:
        g.write(line if line.startswith(("#", "t_s")) else "0.000" + line[line.index(","):])
rc, out, err = run("record", "-q", "-s", f"file://{P('c64.csv')}?speed=max", "-o", P("c64.kmr"),
                   "--sync", "60")
rc2, out2, _ = run("check", P("c64.kmr"))
ok("D1 64x64, one time stamp, --sync 60: every frame readable", rc2 == 0 and "3000 frames" in out2,
   out2 + err)

# D2: one bad block loses the rest -------------------------------------------
data = bytearray(open(P("s60.kmr"), "rb").read())
data[len(data) // 3] ^= 16
open(P("flip.kmr"), "wb").write(data)
rc, out, err = run("recover", P("flip.kmr"), "-o", P("fixed.kmr"))
rc2, out2, _ = run("check", P("fixed.kmr"))
n = int(out.split()[1]) if out.startswith("recovered") else 0
ok("D2 recover keeps every whole block around a flipped bit", n >= 5800 and rc == 3, f"{rc} {out}{err}")
ok("D2 the recovered file checks ok and says the loss", rc2 == 0 and ": ok" in out2 and "gaps" in out2, out2)
rc, out, err = run("analyze", "-q", P("flip.kmr"))
ok("D2 analyze reads past the damage, warns with the offset, exits 3",
   rc == 3 and "damaged" in err and "59" in err, f"{rc} {err}")
rc, out, err = run("export", P("flip.kmr"), "--to", "csv", "-o", P("flip.csv"))
ok("D2/D24 export of a damaged file: the rest exported, the span named, exit 3",
   rc == 3 and "bytes" in err and os.path.exists(P("flip.csv")), f"{rc} {err}")

rc, out, err = run("report", P("flip.kmr"), "-o", P("flip.pdf"))
ok("D24 report of a damaged file: the span with its offsets, exit 3",
   rc == 3 and "bytes" in err and "damaged" in err, f"{rc} {err}")

# D3: recover X -o X --force ----------------------------------------------------
shutil.copy(P("s60.kmr"), P("x.kmr"))
rc, out, err = run("recover", P("x.kmr"), "-o", P("x.kmr"), "--force")
rc2, out2, _ = run("check", P("x.kmr"))
ok("D3 recover onto its own input is refused and the input kept", rc != 0 and rc2 == 0, err)

# D4 / D23: full disk (file-size limit) -------------------------------------------
for fmt in ("edf", "csv", "hdf5"):
    out_path = P(f"full.{fmt}")
    rc, out, err = run("export", P("s60.kmr"), "--to", fmt, "-o", out_path, fsize=4000)
    ok(f"D4/D23 {fmt} export past the file-size limit: exit 1, said, nothing left",
       rc == 1 and not os.path.exists(out_path) and not temps_left(T) and err.strip(),
       f"rc={rc} {err} left={temps_left(T)}")
rc, out, err = run("report", P("s60.kmr"), "-o", P("full.pdf"), fsize=20000)
ok("D23 report past the file-size limit: exit 1, nothing left", rc == 1 and not os.path.exists(P("full.pdf")), f"{rc} {err}")

def tmpfs_case():
    """a real full disk: 2 MiB tmpfs in a private mount namespace (root)"""
    script = f"""set -e
mkdir -p {P('m')}; mount -t tmpfs -o size=2m tmpfs {P('m')}
dd if=/dev/zero of={P('m')}/fill bs=1k 2>/dev/null || true
set +e
{KM} export {P('s60.kmr')} --to edf -o {P('m')}/out.edf; echo "edf=$?"
ls {P('m')}/out.edf 2>/dev/null && echo "LEFTOVER"
{KM} run -s 'sim://release?seed=1&speed=8' --record {P('m')}/r.kmr --audio none -d 3 >/dev/null; echo "run=$?"
umount {P('m')}
"""
    p = subprocess.run(["unshare", "-m", "bash", "-c", script], capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr
if root and shutil.which("unshare"):
    o = tmpfs_case()
    ok("D4 EDF on a real full tmpfs: exit 1, no file, the reason", "edf=1" in o and
       "LEFTOVER" not in o and "No space left" in o, o)
    ok("D13 run --record on a full disk: exit 1", "run=1" in o, o)
else:
    skip("D4/D13 real tmpfs", "needs root and unshare")
    rc, out, err = run("run", "-s", "sim://release?seed=1&speed=8", "--record", P("r13.kmr"),
                       "--audio", "none", "-d", "3", fsize=3000)
    ok("D13 run --record past the file-size limit: exit 1", rc == 1, f"{rc} {err}")

# D5 / D16 / D31: a stalled stdout ----------------------------------------------
import fcntl
run("simulate", "-s", "release", "-d", "180", "--seed", "5", "-o", P("s180.csv"))
def stalled_run(source, record, wav, drain, duration):
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ: a 4 KiB pipe, full within seconds
    args = [KM, "run", "-s", source, "--json", "--audio", f"wav:{wav}", "-d", str(duration)]
    if record:
        args += ["--record", record]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    if drain:
        while os.read(r, 1 << 20):
            pass
    try:
        err = p.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        return "timeout", 99, ""
    os.close(r)
    return p.returncode, time.monotonic() - t0, err
def kmr_events(path):
    rc, out, _ = run("info", "--json", path)
    return json.loads(out)["events"] if rc == 0 else -1
replay = f"file://{P('s180.csv')}?speed=8"  # ends by itself: the same events each time
rcA, elA, errA = stalled_run(replay, P("drain.kmr"), P("drain.wav"), True, 60)
rcB, elB, errB = stalled_run(replay, P("stall.kmr"), P("stall.wav"), False, 60)
ok("D5/D16 the recording holds every event with a stalled stdout",
   kmr_events(P("stall.kmr")) == kmr_events(P("drain.kmr")) > 10,
   f"{kmr_events(P('stall.kmr'))} vs {kmr_events(P('drain.kmr'))}")
ok("D5 every cue still played with a stalled stdout",
   open(P("stall.wav"), "rb").read() == open(P("drain.wav"), "rb").read(), errB[-300:])
ok("D31 the stalled run says what it could not print and exits 1",
   rcB == 1 and "standard output is not being read" in errB, f"{rcB} {errB[-300:]}")
rcC, elC, errC = stalled_run("sim://release?seed=7&speed=8", None, P("live.wav"), False, 12)
ok("D5 --duration holds with a stalled stdout (a live 12 s run ends in time)",
   elC < 20 and "not being read" in errC, f"{elC:.1f} s rc={rcC} {errC[-200:]}")

# D6 / D7 / D8 / D17 / D21: outputs --------------------------------------------------
if root:
    os.mkdir(P("dev"))
    os.mknod(P("dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(P("dev/null"), 0o666)
    for fmt in ("csv", "edf", "hdf5"):
        rc, out, err = run("export", P("s60.kmr"), "--to", fmt, "-o", P("dev/null"), "--force")
        st = os.lstat(P("dev/null"))
        ok(f"D6 export --force onto a device node ({fmt}): refused, node untouched",
           rc != 0 and stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666, err)
    rc, out, err = run("record", "-s", "sim://", "-o", P("dev/null"), "-d", "1", "--force", "-q")
    ok("D6 record --force onto a device node: refused, node kept",
       rc != 0 and stat.S_ISCHR(os.lstat(P("dev/null")).st_mode), err)
else:
    skip("D6 device nodes", "mknod needs root")
os.symlink(P("planted.csv"), P("l.csv"))
for fmt, name in (("csv", "l.csv"),):
    rc, out, err = run("export", P("s60.kmr"), "--to", fmt, "-o", P(name))
    ok("D7 a dangling symlink is not followed", rc != 0 and not os.path.exists(P("planted.csv")), err)
os.symlink(P("planted.pdf"), P("l.pdf"))
rc, out, err = run("report", P("s60.kmr"), "-o", P("l.pdf"))
ok("D7 report through a dangling symlink refused", rc != 0 and not os.path.exists(P("planted.pdf")), err)
for fmt in ("csv", "edf", "hdf5"):
    rc, out, err = run("export", P("s60.kmr"), "--to", fmt, "-o", P(f"u.{fmt}"), umask=0)
    mode = stat.S_IMODE(os.stat(P(f"u.{fmt}")).st_mode) if os.path.exists(P(f"u.{fmt}")) else -1
    ok(f"D8 {fmt} export is 0600 even under umask 000", rc == 0 and mode == 0o600, oct(mode))
rc, out, err = run("report", P("s60.kmr"), "-o", P("u.pdf"), umask=0)
ok("D8 report is 0600 under umask 000", rc == 0 and stat.S_IMODE(os.stat(P("u.pdf")).st_mode) == 0o600)
shutil.copy(P("s.csv"), P("g.csv"))
rc, out, err = run("export", P("g.csv"), "--to", "csv", "-o", P("g.csv"), "--force")
ok("D17 export onto its own input refused, input intact",
   rc != 0 and os.path.getsize(P("g.csv")) == os.path.getsize(P("s.csv")), err)
shutil.copy(P("s60.kmr"), P("y.kmr"))
rc, out, err = run("record", "-s", f"file://{P('y.kmr')}?speed=max", "-o", P("y.kmr"), "--force", "-q")
rc2, out2, _ = run("check", P("y.kmr"))
ok("D17 record onto its own input refused, input intact", rc != 0 and rc2 == 0 and "6000 frames" in out2, err)
open(P("v.csv"), "w").write("precious\n")
rc, out, err = run("simulate", "-d", "1", "-o", P("v.csv"))
ok("D21 simulate never overwrites without --force", rc == 2 and open(P("v.csv")).read() == "precious\n", err)
open(P("v.wav"), "w").write("precious\n")
rc, out, err = run("run", "-d", "1", "--audio", f"wav:{P('v.wav')}")
ok("D21 --audio wav: never overwrites without --force", rc != 0 and open(P("v.wav")).read() == "precious\n", err)
open(P("v.json"), "w").write("precious\n")
rc, out, err = run("report", P("s60.kmr"), "-o", P("m.pdf"), "--map", P("v.json"))
ok("D21 report --map never overwrites without --force",
   rc != 0 and open(P("v.json")).read() == "precious\n" and not os.path.exists(P("m.pdf")), err)

# D9 / D26: lying headers ---------------------------------------------------------------
with open(P("s.csv")) as f, open(P("p.csv"), "w") as g:
    g.write(f.read().replace("# pitch_mm=12.7", "# pitch_mm=0.001", 1))
t0 = time.monotonic()
rc, out, err = run("analyze", "-q", P("p.csv"), timeout=30)
ok("D9 pitch 0.001 mm: a clear error at once", rc == 1 and "pitch_mm" in err and time.monotonic() - t0 < 5, err)
for name in ("pitch_tiny", "pitch_inf", "rate_neg", "rate_nan", "rows_wrap", "newer"):
    rc, out, err = run("analyze", "-q", C(name + ".kmr"), timeout=30)
    ok(f"D9/D26 {name}.kmr: refused with the reason", rc == 1 and err.strip(), f"{rc} {err}")
with open(P("s.csv")) as f, open(P("rate_tiny.csv"), "w") as g:
    g.write(f.read().replace("# rate_hz=100", "# rate_hz=1e-300", 1))
rc, out, err = run("analyze", "-q", P("rate_tiny.csv"))
ok("D26 rate_hz=1e-300 refused", rc == 1, err)
rc, out, err = run("analyze", "-q", C("t_back.kmr"))
ok("D26 time going back: those frames skipped and said, exit 3", rc == 3 and "goes back" in err, err[-200:])

# D10: a forward time jump -----------------------------------------------------------------
lines = open(P("s.csv")).read().splitlines()
hdr = [l for l in lines if l.startswith(("#", "t_s"))]
body = [l for l in lines if not l.startswith(("#", "t_s"))][:100]
jump = [("%.6f" % (float(l.split(",", 1)[0]) + (1e7 if i >= 50 else 0))) + "," + l.split(",", 1)[1]
        for i, l in enumerate(body)]
open(P("tjump.csv"), "w").write("\n".join(hdr + jump) + "\n")
t0 = time.monotonic()
rc, out, err = run("export", P("tjump.csv"), "--to", "edf", "-o", P("tj.edf"), timeout=60)
ok("D10 one forward jump: EDF export bounded (fast, small), the jump's frames refused",
   time.monotonic() - t0 < 10 and (not os.path.exists(P("tj.edf")) or os.path.getsize(P("tj.edf")) < 10**6),
   f"{rc} {err[-200:]}")
rc, out, err = run("export", C("t_jump.kmr"), "--to", "edf", "-o", P("tj2.edf"), timeout=60)
ok("D10 a 1e18 ns jump in a .kmr: export bounded, exit 3", rc == 3 and os.path.getsize(P("tj2.edf")) < 10**6, f"{rc} {err[-200:]}")
rc, out, err = run("report", P("tjump.csv"), "-o", P("tj.pdf"), timeout=60)
pages = int(out.split(",")[1].split()[0]) if rc in (0, 3) else -1
ok("D10 report of the jump: a few pages, not 33 336", 0 < pages < 10, out + err[-200:])
# a real gap (frames missing, not a lie): EDF+D with records only where data is
gap = [l for i, l in enumerate(lines) if l.startswith(("#", "t_s")) or not (1000 <= i - len(hdr) < 3000)]
open(P("gap.csv"), "w").write("\n".join(gap) + "\n")
rc, out, err = run("export", P("gap.csv"), "--to", "edf", "-o", P("gap.edf"))
def edf_onsets(path):
    """the record onsets of an EDF+ file, from its time-keeping TALs (EDF+ spec)"""
    with open(path, "rb") as f:
        h = f.read(256)
        ns, nrec = int(h[252:256]), int(h[236:244])
        sig = f.read(256 * ns)
        spr = [int(sig[216 * ns + 8 * i: 216 * ns + 8 * i + 8]) for i in range(ns)]
        per = 2 * sum(spr)
        ons = []
        for _ in range(nrec):
            rec = f.read(per)
            tal = rec[per - 2 * spr[-1]:]
            ons.append(float(tal[1:tal.index(b"\x14")]))
        return h[192:197], ons
kind, ons = edf_onsets(P("gap.edf"))
ok("D10/EDF+D a recording with a 20 s gap is EDF+D: 40 records at their true seconds",
   rc == 0 and kind == b"EDF+D" and len(ons) == 40 and ons[10] - ons[9] == 21, f"{out} {ons[8:12]}")

# D11: spasm detector at 4 kHz (ASan/UBSan builds catch the out-of-bounds read)
rc, out, err = run("analyze", "-q", "sim://release?rate=4000&duration=4", timeout=120)
ok("D11 analyze at 4000 frames/s runs clean", rc == 0, err[-300:])

# D12: run | head -5 ------------------------------------------------------------------------
t0 = time.monotonic()
p = subprocess.run(f"'{KM}' run -s 'sim://?scenario=release' --audio none | head -5", shell=True,
                   capture_output=True, text=True, timeout=30)
ok("D12 run | head -5 ends by itself", time.monotonic() - t0 < 10 and len(p.stdout.splitlines()) == 5)

# D14: one de-identification rule, checked by grepping every output -------------------------
secrets = [b"Jane Doe", b"S-2024-03-05", b"Dr. Who", b"12345", b"1970-01-02"]
import datetime
today = datetime.date.today().isoformat().encode()
outs = {}
for fmt in ("csv", "edf", "hdf5"):
    run("export", P("s60.kmr"), "--to", fmt, "-o", P(f"d.{fmt}"), "--deidentify")
    outs[fmt] = open(P(f"d.{fmt}"), "rb").read()
run("report", P("s60.kmr"), "-o", P("d.pdf"), "--deidentify")
pdf = subprocess.run(["pdftotext", P("d.pdf"), "-"], capture_output=True).stdout
info = subprocess.run(["pdfinfo", P("d.pdf")], capture_output=True, text=True).stdout
outs["pdf text"] = pdf
for k, v in outs.items():
    leaked = [s for s in secrets + [today] if s in v]
    ok(f"D14 de-identified {k}: no id, name, note or the day", not leaked, str(leaked))
ok("D14 de-identified PDF metadata carries no creation day",
   today.decode()[:4] not in "".join(l for l in info.splitlines() if "Date" in l) and
   "1985" in info, info)

# D15 / D28: hostile metadata ------------------------------------------------------------------
run("record", "-s", "sim://", "-o", P("inj.kmr"), "-d", "1", "-q",
    "--subject", 'x","admin":true,"y":"\\', "--notes", "\x1b]0;owned\x07\x1b[2J \xff")
rc, out, err = run("info", "--json", P("inj.kmr"))
try:
    j = json.loads(out)
    good = "admin" not in j and j["subject"].startswith('x","admin"')
except Exception as e:
    good = False
ok("D15 info --json of hostile metadata is valid JSON with no injected key", good, out)
rc, out, err = run("info", P("inj.kmr"))
ok("D28 info prints no escape or bell bytes", "\x1b" not in out and "\x07" not in out)

# D18: 1024 x 1024 source -------------------------------------------------------------------
before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
rc, out, err = run("record", "-s", f"file://{C('big1024.kmr')}?speed=max", "-o", P("rb.kmr"), "-q", timeout=120)
rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
ok("D18 recording a 1024x1024 source takes bounded memory", rc == 0 and rss_mb < 1500, f"{rc} {rss_mb:.0f} MB {err}")

# D20 / D29: check ----------------------------------------------------------------------------------
open(P("e.kmr"), "w").close()
rc, out, err = run("check", P("e.kmr"))
ok("D20 an empty file is not a recording", rc == 1 and "not a recording" in (out + err).lower(), out + err)
rc, out, err = run("check", C("ev_lie.kmr"))
ok("D29 a block that lies about its event count is damage", rc == 1 and ", 0 events," in out, out)
rc, out, err = run("check", C("gap_lie.kmr"))
ok("D29 a gap block claiming 2^63 frames is damage", rc == 1 and "0 gaps (0 frames lost)" in out, out)
rc, out, err = run("analyze", "-q", C("two_hdr.kmr"))
ok("D29 two joined recordings: the second is not read as the first, exit 3", rc == 3 and "second recording" in err, err)

# D22: SIGHUP closes the recording -------------------------------------------------------------
p = subprocess.Popen([KM, "record", "-s", "sim://", "-o", P("h.kmr"), "-q"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
time.sleep(2.5)
p.send_signal(signal.SIGHUP)
p.wait(timeout=10)
rc, out, err = run("check", P("h.kmr"))
ok("D22 SIGHUP: the recording is closed properly", rc == 0 and ": ok\n" in out, out)

# D25: extreme values -------------------------------------------------------------------------
rc, out, err = run("export", C("val_big.kmr"), "--to", "csv", "-o", P("vb.csv"))
ok("D25 a cell at 1e17 kPa: that frame refused, the rest exported", rc == 3 and "kPa" in err, err[-200:])

# D27: FIFOs and pipes --------------------------------------------------------------------------
os.mkfifo(P("fifo"))
rc, out, err = run("info", P("fifo"), timeout=10)
ok("D27 a FIFO with no writer: a clear error, no hang", rc == 1 and "regular file" in err, f"{rc} {err}")
p = subprocess.run(f"cat '{P('s.csv')}' | '{KM}' analyze /dev/stdin", shell=True,
                   capture_output=True, text=True, timeout=10)
ok("D27 a pipe as /dev/stdin: a clear error", p.returncode == 1 and "regular file" in p.stderr, p.stderr)

# D30: cues ---------------------------------------------------------------------------------------
rc, out, err = run("cues", "--play", "nosuch", "--audio", "dummy")
ok("D30 cues --play of an unknown cue is an error", rc == 2, err)
rc, out, err = run("cues", "--play", "all", "--audio", "none")
ok("D30 cues --play with nothing to play it on is an error", rc == 1 and not out.strip(), out + err)
open(P("long.cues"), "w").write("[spasm]\nwords = " + "x" * 600 + "\n")
rc, out, err = run("cues", "--cues", P("long.cues"))
ok("D30 a long line is reported at its own line number", rc == 2 and "long.cues:2:" in err, err)

# D32: no sound-server connection when nothing is heard ---------------------------------------------
if shutil.which("strace"):
    p = subprocess.run(["strace", "-f", "-e", "trace=connect", KM, "run", "-s", "sim://", "--audio",
                        "none", "-d", "1"], capture_output=True, text=True, timeout=30)
    ok("D32 --audio none opens no PulseAudio connection", "pulse" not in p.stderr)
else:
    skip("D32", "strace is not installed")

# D33: paths with ? and % --------------------------------------------------------------------------
shutil.copy(P("s60.kmr"), P("a?b%c.kmr"))
rc, out, err = run("export", P("a?b%c.kmr"), "--to", "csv", "-o", P("q.csv"))
ok("D33 a path with ? and % exports", rc == 0, err)

shutil.rmtree(T, ignore_errors=True)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
