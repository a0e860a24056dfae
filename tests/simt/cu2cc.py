#!/usr/bin/env python3
"""cu2cc.py IN.cu OUT.cc: a kernel source as host C++ for the SIMT emulator (simt.h).

Each launch `k<<<grid, block, shared, stream>>>(args)` becomes
`::svsimt::Launch(grid, block, shared, stream)("k", [](auto... svsimtArg) { k(svsimtArg...); },
args)`, and
quoted includes of files beside IN become absolute, since OUT lives in the build tree. Lines keep their numbers (#line), so that
compiler messages name IN."""
import os
import re
import sys

LAUNCH = re.compile(
    r"(?P<name>[A-Za-z_][\w:]*(?:<[^<>;]*>)?)\s*<<<(?P<cfg>.*?)>>>\s*\((?P<empty>\s*\))?",
    re.S)
INCLUDE = re.compile(r'^(\s*#\s*include\s*)"([^"]+)"', re.M)


def main(src, dst):
    with open(src) as f:
        text = f.read()
    here = os.path.dirname(os.path.abspath(src))

    def launch(m):
        head = '::svsimt::Launch(%s)("%s", [](auto... svsimtArg) { %s(svsimtArg...); }' % (
            m["cfg"], m["name"], m["name"])
        return head + ")" if m["empty"] else head + ", "

    out, n = LAUNCH.subn(launch, text)
    if "<<<" in out:
        sys.exit("cu2cc.py: %s: a launch it cannot read" % src)
    def include(m):
        near = os.path.join(here, m[2])
        return '%s"%s"' % (m[1], near) if os.path.exists(near) else m[0]

    out = INCLUDE.sub(include, out)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with open(dst, "w") as f:
        f.write('#include "simt.h"\n#line 1 "%s"\n%s' % (os.path.abspath(src), out))
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: cu2cc.py IN.cu OUT.cc")
    main(sys.argv[1], sys.argv[2])
