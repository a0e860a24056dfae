#!/usr/bin/env python3
"""cu2cc.py IN.cu OUT.cc: a kernel source as host C++ for the SIMT emulator (simt.h).

- Each launch `k<<<grid, block, shared, stream>>>(args)` becomes
  `::svsimt::Launch(grid, block, shared, stream)("k", [](auto... svsimtArg) {
  k(svsimtArg...); }, args)`, with `.bound(N)` after `Launch(...)` when the file declares k
  with `__launch_bounds__(N)`: a launch of more threads fails, as on the device.
- Each __shared__ variable becomes a reference to storage of the block that runs (simt.h:
  blockShared), filled with junk when the block first passes its declaration.
- Quoted includes of files beside IN become absolute, since OUT lives in the build tree.
Lines keep their numbers (#line), so that compiler messages name IN.
"""
import os
import re
import sys

LAUNCH = re.compile(
    r"(?P<name>[A-Za-z_][\w:]*(?:<[^<>;]*>)?)\s*<<<(?P<cfg>.*?)>>>\s*\((?P<empty>\s*\))?",
    re.S)
INCLUDE = re.compile(r'^(\s*#\s*include\s*)"([^"]+)"', re.M)
SHARED = re.compile(r"^[ \t]*__shared__\b", re.M)
DECLARED = re.compile(r"(\w+)\s*(?:\[[^\]]*\]\s*)*$")
BOUNDED = re.compile(r"__global__\s+void\s+__launch_bounds__\((?P<bound>[^()]*)\)\s+(?P<name>\w+)")


def block_shared(text):
    """Each `__shared__ T name...;` becomes `__shared__ T svsimtKey_name...; auto& name =
    ::svsimt::blockShared(svsimtKey_name);`: the declared static only names the variable, and
    each block gets storage of its own, filled with junk (svemu::fillUndefined), as a new block
    finds junk."""
    out, at = [], 0
    for m in SHARED.finditer(text):
        depth, i = 0, m.end()
        while depth > 0 or text[i] != ";":  # the `;` that ends it, past any braces
            if text[i] in "{([":
                depth += 1
            elif text[i] in "})]":
                depth -= 1
            i += 1
        tail = text.rfind("}", m.end(), i) + 1 or m.end()
        name = DECLARED.search(text, tail, i)
        if not name:
            sys.exit("cu2cc.py: a __shared__ declaration it cannot read: %s" % text[m.end():i])
        out.append(text[at:name.start(1)] + "svsimtKey_" + text[name.start(1):i + 1])
        out.append(" auto& %s = ::svsimt::blockShared(svsimtKey_%s);" % (name[1], name[1]))
        at = i + 1
    return "".join(out) + text[at:]


def main(src, dst):
    with open(src) as f:
        text = f.read()
    here = os.path.dirname(os.path.abspath(src))

    bounds = {b["name"]: b["bound"] for b in BOUNDED.finditer(text)}

    def launch(m):
        kernel = m["name"].split("<")[0].split("::")[-1]
        bound = ".bound(%s)" % bounds[kernel] if kernel in bounds else ""
        head = '::svsimt::Launch(%s)%s("%s", [](auto... svsimtArg) { %s(svsimtArg...); }' % (
            m["cfg"], bound, m["name"], m["name"])
        return head + ")" if m["empty"] else head + ", "

    out = LAUNCH.sub(launch, block_shared(text))
    if "<<<" in out:
        sys.exit("cu2cc.py: %s: a launch it cannot read" % src)

    def include(m):
        near = os.path.join(here, m[2])
        return '%s"%s"' % (m[1], near) if os.path.exists(near) else m[0]

    out = INCLUDE.sub(include, out)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with open(dst, "w") as f:
        f.write('#include "simt.h"\n#line 1 "%s"\n%s' % (os.path.abspath(src), out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: cu2cc.py IN.cu OUT.cc")
    main(sys.argv[1], sys.argv[2])
