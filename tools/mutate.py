#!/usr/bin/env python3
"""mutate.py: mutation testing of the CUDA kernels on the SIMT emulator (no GPU needed).

Each mutant changes one operator or deletes one statement in one kernels/*.cu file, rebuilds the
SIMT test binaries in BUILD (kernels/*.cu compiled as host C++, tests/simt/cu2cc.py) and runs
them; a mutant is killed when a test fails, crashes or hangs past the timeout, survives when
every test passes, and is void when it does not compile. The file is restored after each
mutant, and the binaries rebuilt from it at the end. Debian packages no mutation tool for C++
or CUDA, hence this small driver.

  python3 tools/mutate.py [--build build] [--count 60] [--seed 1] [--files kernels/vote/*.cu]
                          [--list] [--only kernels/topk/topk.cu:130:35 ...]

Sites are drawn at random (seeded) from every match of the operators below in code (comments
and preprocessor lines are skipped); --list prints them all. The tests run with a fixed
SVSIMT_SEED, so a run can be repeated.
"""
import argparse
import glob
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARIES = ["kernel_simt_tests", "cuda_simt_tests"]

# (name, pattern, replacement): operators written with spaces, as this code base does, so that
# template brackets, shifts and arrows are never matched.
SWAPS = [
    ("<  -> <=", r" < ", " <= "), ("<= -> <", r" <= ", " < "),
    (">  -> >=", r" > ", " >= "), (">= -> >", r" >= ", " > "),
    ("== -> !=", r" == ", " != "), ("!= -> ==", r" != ", " == "),
    ("&& -> ||", r" && ", " || "), ("|| -> &&", r" \|\| ", " && "),
    ("&  -> |", r" & ", " | "), ("|  -> &", r" \| ", " & "), ("^  -> |", r" \^ ", " | "),
    ("+ 1 -> + 0", r" \+ 1\b(?!\.)", " + 0"), ("- 1 -> - 0", r" - 1\b(?!\.)", " - 0"),
    ("+  -> -", r" \+ ", " - "), ("drop ~", r"~(?=[A-Za-z_(])", ""),
    ("drop !", r"!(?=[A-Za-z_(])", ""),
]
# Whole statements whose loss a test must notice.
DELETIONS = re.compile(
    r"^(\s*)((?:if \([^;]*\) )?(?:atomic\w+|__syncthreads|__syncwarp)\([^;]*\);)\s*$")


def code_part(line):
    """The line without its // comment (no string literal here holds //)."""
    i = line.find("//")
    return line if i < 0 else line[:i]


def sites(path):
    lines = open(path).read().split("\n")
    out = []
    for no, line in enumerate(lines):
        code = code_part(line)
        if not code.strip() or code.lstrip().startswith("#") or "static_assert" in code:
            continue
        for name, pat, rep in SWAPS:
            for m in re.finditer(pat, code):
                out.append((path, no, name, m.start(), m.end(), rep))
        m = DELETIONS.match(code)
        if m:
            out.append((path, no, "delete statement", len(m.group(1)), len(code.rstrip()), ""))
    return out


def where(site):
    """FILE:LINE:COLUMN of a site, both counted from 1."""
    return f"{os.path.relpath(site[0], ROOT)}:{site[1] + 1}:{site[3] + 1}"


def apply(site):
    path, no, _, start, end, rep = site
    text = open(path).read()
    lines = text.split("\n")
    lines[no] = lines[no][:start] + rep + lines[no][end:]
    return text, "\n".join(lines)


def build(build_dir):
    r = subprocess.run(["ninja", "-C", build_dir] + BINARIES, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, r.stdout


def run_tests(build_dir, timeout):
    """Runs the binaries side by side; the first failure stops the others. Returns (verdict,
    detail)."""
    env = dict(os.environ, SVSIMT_SEED="1", OPENBLAS_NUM_THREADS="1")
    procs, logs = {}, {}
    for b in BINARIES:
        # A file, not a pipe: a test that fails with more output than a pipe holds would block
        # on it and be reported as a hang.
        logs[b] = tempfile.TemporaryFile(mode="w+")
        procs[b] = subprocess.Popen(
            [os.path.join(build_dir, "tests", b), "--gtest_brief=1", "--gtest_fail_fast=1"],
            stdout=logs[b], stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
    start = time.time()
    verdict, detail = "survived", ""
    while procs:
        for b, p in list(procs.items()):
            if p.poll() is None:
                continue
            logs[b].seek(0)
            out = logs[b].read()
            del procs[b]
            if p.returncode != 0:
                failed = [l for l in out.splitlines() if l.startswith("[  FAILED  ]")]
                verdict = "killed"
                detail = f"{b}: " + (failed[0][13:].split(" (")[0] if failed
                                     else f"exit {p.returncode}")
        if verdict == "killed" or time.time() - start > timeout:
            if verdict != "killed" and procs:
                verdict, detail = "killed", "timeout (hang): " + ", ".join(procs)
            for p in procs.values():
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            break
        time.sleep(0.2)
    return verdict, detail, time.time() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=420)
    ap.add_argument("--files", nargs="*", default=sorted(glob.glob(f"{ROOT}/kernels/*/*.cu")))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--only", nargs="*", default=[],
                    help="run just these sites, FILE:LINE:COLUMN as --list names them")
    args = ap.parse_args()
    every = [s for f in args.files for s in sites(f)]
    if args.only:
        every = [s for s in every if where(s) in args.only]
        args.count = len(every)
    if args.list:
        for site in every:
            print(f"{where(site)}: {site[2]}")
        print(f"# {len(every)} sites")
        return 0
    chosen = sorted(random.Random(args.seed).sample(every, min(args.count, len(every))),
                    key=lambda s: (s[0], s[1], s[3]))
    print(f"# mutate.py: {len(chosen)} of {len(every)} sites in {len(args.files)} files, seed "
          f"{args.seed}, tests {' '.join(BINARIES)} (SVSIMT_SEED=1), timeout {args.timeout:.0f} s",
          flush=True)
    ok, out = build(args.build)
    if not ok:
        print(out)
        return 1
    # SIGTERM (a CI timeout, kill) unwinds through the finally below, which restores the file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = {"killed": 0, "survived": 0, "void": 0}
    for site in chosen:
        path, no, name, *_ = site
        original, mutant = apply(site)
        changed = mutant.split("\n")[no].strip()
        try:
            open(path, "w").write(mutant)
            ok, out = build(args.build)
            if ok:
                verdict, detail, secs = run_tests(args.build, args.timeout)
            else:
                verdict, detail, secs = "void", "does not compile", 0.0
        finally:
            open(path, "w").write(original)
        counts[verdict] += 1
        print(f"{verdict:8} {where(site):32} {name:16} {secs:6.0f}s  {changed}  [{detail}]",
              flush=True)
    ok, out = build(args.build)
    scored = counts["killed"] + counts["survived"]
    print(f"# killed {counts['killed']}, survived {counts['survived']}, void {counts['void']}; "
          f"score {counts['killed']}/{scored}" + ("" if ok else "; REBUILD FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
