#!/usr/bin/env python3
"""mutate.py: mutation testing of the code that has never run on a GPU, on the emulated device.

Each mutant changes one operator or deletes one statement in one file, rebuilds the test
binaries that hold the file to its contract in BUILD and runs them; a mutant is killed when a
test fails, crashes or hangs past the timeout, survives when every test passes, and is void
when it does not compile. The file is restored after each mutant, and the binaries rebuilt from
it at the end. Debian packages no mutation tool for C++ or CUDA, hence this small driver.

  python3 tools/mutate.py [--build build] [--count 60] [--seed 1] [--target kernels|backend]
                          [--files kernels/vote/*.cu] [--list]
                          [--only kernels/topk/topk.cu:130:35 ...]

Targets:
  kernels  kernels/*/*.cu on the SIMT emulator (compiled as host C++, tests/simt/cu2cc.py):
           kernel_simt_tests and cuda_simt_tests; deletions of atomics and barriers.
  backend  the CUDA backend and its device transports (lib/cuda_backend.cc,
           lib/transport/loopback_cuda.cc, nccl.cc) on the emulated device and NCCL (tests/emu:
           twins of the kernels, streams that run their work only when CUDA's ordering requires,
           forked ranks for NCCL): cuda_emu_tests under the lazy schedule and under a paced one
           (SVEMU_SCHEDULE_SEED=1), nccl_emu_tests; deletions of launches, CUDA calls and
           transport calls (SV_LAUNCH, SV_WIRE, SVCHECK, SVCUDACHECK*), multi-line ones
           included.

Sites are drawn at random (seeded) from every match of the operators below in code (comments
and preprocessor directives are skipped); --list prints them all. The tests run with fixed
seeds, so a run can be repeated. While a run lasts, the target's files hold its mutants in
turn, and each mutant's build takes whatever the tree holds: do not read the target's files,
or edit them or the tests, until it ends.
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
# Per target: its files, its test runs (binary, extra environment) and its statement deletions.
TARGETS = {
    "kernels": {
        "files": lambda: sorted(glob.glob(f"{ROOT}/kernels/*/*.cu")),
        "runs": [("kernel_simt_tests", {}), ("cuda_simt_tests", {})],
        # Whole one-line statements whose loss a test must notice.
        "delete": re.compile(
            r"^(\s*)((?:if \([^;]*\) )?(?:atomic\w+|__syncthreads|__syncwarp)\([^;]*\);)\s*$"),
        "deleted": "",
    },
    "backend": {
        "files": lambda: [f"{ROOT}/lib/{f}.cc" for f in
                          ("cuda_backend", "transport/loopback_cuda", "transport/nccl")],
        "runs": [("cuda_emu_tests", {}), ("cuda_emu_tests", {"SVEMU_SCHEDULE_SEED": "1"}),
                 ("nccl_emu_tests", {})],
        # The first line of a statement (it may go on for lines: parentheses are balanced).
        "delete": re.compile(
            r"^(\s*)(?:if \([^;]*\) )?(?:SV_LAUNCH|SV_WIRE|SVCHECK|SVCUDACHECK\w*)\("),
        "deleted": "{}",  # an empty statement: the deleted one may be the body of an if or for
    },
}

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


def code_part(line):
    """The line without its // comment (no string literal here holds //)."""
    i = line.find("//")
    return line if i < 0 else line[:i]


def statement_end(lines, no):
    """The last line of the statement that starts on line `no`: where its parentheses close and
    a ';' follows. None if that is not found."""
    depth = 0
    for last in range(no, min(no + 20, len(lines))):
        for ch in code_part(lines[last]):
            depth += (ch == "(") - (ch == ")")
        if depth == 0 and code_part(lines[last]).rstrip().endswith(";"):
            return last
    return None


def sites(path, deletions, deleted):
    """Each site: (path, first line, name, start column, end column, replacement, last line);
    the text from the start column of the first line to the end column of the last goes."""
    lines = open(path).read().split("\n")
    out = []
    for no, line in enumerate(lines):
        code = code_part(line)
        if not code.strip() or code.lstrip().startswith("#") or "static_assert" in code:
            continue
        for name, pat, rep in SWAPS:
            for m in re.finditer(pat, code):
                out.append((path, no, name, m.start(), m.end(), rep, no))
        m = deletions.match(code)
        last = statement_end(lines, no) if m else None
        if last is not None:
            out.append((path, no, "delete statement", len(m.group(1)),
                        len(code_part(lines[last]).rstrip()), deleted, last))
    return out


def where(site):
    """FILE:LINE:COLUMN of a site, both counted from 1."""
    return f"{os.path.relpath(site[0], ROOT)}:{site[1] + 1}:{site[3] + 1}"


def apply(site):
    path, no, _, start, end, rep, last = site
    text = open(path).read()
    lines = text.split("\n")
    lines[no:last + 1] = [lines[no][:start] + rep + lines[last][end:]]
    return text, "\n".join(lines)


def build(build_dir, runs):
    binaries = sorted({b for b, _ in runs})
    r = subprocess.run(["ninja", "-C", build_dir] + binaries, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, r.stdout


def run_name(run):
    binary, extra = run
    return " ".join([f"{k}={v}" for k, v in extra.items()] + [binary])


def run_tests(build_dir, runs, timeout):
    """Runs the test runs side by side; the first failure stops the others. Returns (verdict,
    detail)."""
    procs, logs = {}, {}
    for run in runs:
        b = run_name(run)
        env = dict(os.environ, SVSIMT_SEED="1", OPENBLAS_NUM_THREADS="1", **run[1])
        # A file, not a pipe: a test that fails with more output than a pipe holds would block
        # on it and be reported as a hang.
        logs[b] = tempfile.TemporaryFile(mode="w+")
        procs[b] = subprocess.Popen(
            [os.path.join(build_dir, "tests", run[0]), "--gtest_brief=1", "--gtest_fail_fast=1"],
            stdout=logs[b], stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
    start = time.time()
    verdict, detail = "survived", ""
    try:
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
                break
            time.sleep(0.2)
    finally:  # also on SIGTERM: no mutant's test outlives the run (forked ranks included)
        for p in procs.values():
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return verdict, detail, time.time() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=420)
    ap.add_argument("--target", choices=sorted(TARGETS), default="kernels")
    ap.add_argument("--files", nargs="*", help="a subset of the target's files")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--only", nargs="*", default=[],
                    help="run just these sites, FILE:LINE:COLUMN as --list names them")
    args = ap.parse_args()
    target = TARGETS[args.target]
    files = [os.path.abspath(f) for f in args.files] if args.files else target["files"]()
    runs = target["runs"]
    every = [s for f in files for s in sites(f, target["delete"], target["deleted"])]
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
    print(f"# mutate.py: {len(chosen)} of {len(every)} sites in {len(files)} files, seed "
          f"{args.seed}, tests {', '.join(run_name(r) for r in runs)} (SVSIMT_SEED=1), "
          f"timeout {args.timeout:.0f} s", flush=True)
    ok, out = build(args.build, runs)
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
        if name == "delete statement":
            changed = "deleted: " + " ".join(original.split("\n")[no:site[6] + 1]).strip()
        try:
            open(path, "w").write(mutant)
            ok, out = build(args.build, runs)
            if ok:
                verdict, detail, secs = run_tests(args.build, runs, args.timeout)
            else:
                verdict, detail, secs = "void", "does not compile", 0.0
        finally:
            open(path, "w").write(original)
        counts[verdict] += 1
        print(f"{verdict:8} {where(site):32} {name:16} {secs:6.0f}s  {changed}  [{detail}]",
              flush=True)
    ok, out = build(args.build, runs)
    scored = counts["killed"] + counts["survived"]
    print(f"# killed {counts['killed']}, survived {counts['survived']}, void {counts['void']}; "
          f"score {counts['killed']}/{scored}" + ("" if ok else "; REBUILD FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
