#!/usr/bin/env python3
"""Checks kcont's manual pages (man/*.1, man/*.3). CTest `test_man`, label `man`.

Usage: check_man.py --src SOURCE_DIR --build BUILD_DIR --scratch DIR
                    [--sanitize thread|address] [--nicsim PATH] [--torture PATH]

What it checks, in order (every failure is listed; exit 1 if any):

(a) Lint. `mandoc -Tlint -W warning PAGE` prints nothing for every page. Without mandoc this
    part is skipped with a message and the test ends as skipped (exit 77) after the others
    passed; scripts/deps.sh installs mandoc, so CI always has it.

(b) The pages match the headers, both ways.
    A *public kernel-style function* is a function declared, or a function-like macro
    defined, at global scope (outside every namespace, class, struct and function body) in a
    public header: SOURCE_DIR/*/include/kcont/*.h (the headers shared only by kcont's own
    layers live under softint/internal/ and are not installed).
    The C++ faces (everything in namespace kcont) are not kernel-style and are not counted.
    - every public kernel-style function appears in the SYNOPSIS of some section-3 page as
      `.Fn NAME ...` or `.Fo NAME`, and every function in a SYNOPSIS is one of them;
    - its prototype there is the header's: the `.Ft` return type, the name and the `.Fa`
      arguments, compared after removing white space next to punctuation (so `void *arg`
      equals `void* arg`); default arguments are part of it. For a macro, the arguments are
      the macro's parameter names;
    - every function in a page's SYNOPSIS is also a `.Nm` of that page's NAME section (the
      install makes NAME.3 -> PAGE.3 links from those lines, so `man callout_halt` works),
      and every `.Nm` of a section-3 page names a function of its SYNOPSIS or is the page.
    - with --nicsim (--torture), every option `kcont-nicsim --help` (`kcont-torture --help`)
      lists is an `.It Fl` of kcont-nicsim.1 (kcont-torture.1).

(c) The examples compile and run. Convention: every `.Bd -literal` block inside `.Sh EXAMPLES`
    of a section-3 page is a complete C++20 program with `int main`, using only the public
    headers. The block's text is un-escaped (`\\e` -> backslash, `\\&` -> nothing, `\\-` -> -)
    and compiled against a scratch install of the build tree (cmake --install, then
    `pkg-config --cflags --libs kcont`: the installed headers and libraries, as a user
    would), then run: it must exit 0 within 60 s. Section-1 examples are shell commands and
    are not run.
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


# ---- C++ headers -----------------------------------------------------------------------------

def strip_comments_and_strings(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        elif c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def norm(s):
    """White space kept only between two word characters, as one space."""
    s = re.sub(r"\s+", " ", s.strip())
    s = re.sub(r"\s*([^\w\s])\s*", r"\1", s)
    return s


def header_functions(src):
    """{name: (kind, return type, [args])} for the public kernel-style functions."""
    found = {}
    headers = sorted(glob.glob(os.path.join(src, "*", "include", "kcont", "*.h")))
    for path in headers:
        text = strip_comments_and_strings(open(path).read())
        # Preprocessor lines (with continuations): function-like macros count; the rest go.
        lines, keep = text.split("\n"), []
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith("#"):
                full = line
                while full.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    full = full[:-1] + " " + lines[i]
                m = re.match(r"\s*#\s*define\s+(\w+)\(([^)]*)\)", full)
                if m:
                    args = [a.strip() for a in m.group(2).split(",") if a.strip()]
                    found[m.group(1)] = ("macro", "", args, path)
                keep.append("")
            else:
                keep.append(line)
            i += 1
        text = "\n".join(keep)
        # Walk the braces; collect statements at global scope.
        depth_kinds = []  # one entry per open brace: True if it is a namespace
        stmt = []
        for c in text:
            if c == "{":
                head = "".join(stmt).strip()
                is_ns = bool(re.match(r"(inline\s+)?namespace\b", head)) or head.startswith("extern \"")
                if not depth_kinds and not is_ns and "(" in head and not re.match(r"(struct|class|union|enum)\b", head):
                    consider(found, head, path)  # an inline function defined at global scope
                depth_kinds.append(is_ns)
                stmt = []
            elif c == "}":
                if depth_kinds:
                    depth_kinds.pop()
                stmt = []
            elif c == ";":
                if not depth_kinds:
                    consider(found, "".join(stmt).strip(), path)
                stmt = []
            else:
                stmt.append(c)
    return found


def split_args(s):
    args, depth, cur = [], 0, []
    for c in s:
        if c in "(<[":
            depth += 1
        elif c in ")>]":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        args.append("".join(cur).strip())
    return args


def consider(found, stmt, path):
    stmt = re.sub(r"\s+", " ", stmt).strip()
    if not stmt or re.match(r"(typedef|using|extern|template|static_assert|friend|struct|class|union|enum)\b", stmt):
        return
    m = re.match(r"(.*?)\b(\w+)\s*\((.*)\)\s*(noexcept)?$", stmt)
    if not m or "=" in m.group(1) or m.group(1).strip().endswith("::"):
        return
    ret = m.group(1).strip()
    ret = re.sub(r"^(inline|static|constexpr|\[\[nodiscard\]\])\s+", "", ret)
    if not ret:
        return
    args = split_args(m.group(3))
    if args == ["void"]:
        args = []
    found[m.group(2)] = ("function", ret, args, path)


# ---- mdoc pages ------------------------------------------------------------------------------

def mdoc_args(rest):
    """The arguments of an mdoc macro line (mdoc quoting: "..." with "" for a quote)."""
    try:
        return shlex.split(rest.replace('\\"', '\x00'), posix=True)
    except ValueError:
        return rest.split()


def parse_page(path):
    sections, cur = {}, None
    for line in open(path).read().split("\n"):
        if line.startswith(".Sh "):
            cur = line[4:].strip().strip('"')
            sections.setdefault(cur, [])
        elif cur is not None:
            sections[cur].append(line)
    return sections


def synopsis_functions(lines):
    """[(name, return type, [args])] from .Ft/.Fn and .Ft/.Fo/.Fa/.Fc."""
    out, ret, fo = [], "", None
    for line in lines:
        if line.startswith(".Ft "):
            ret = " ".join(mdoc_args(line[4:]))
        elif line.startswith(".Fn "):
            a = mdoc_args(line[4:])
            out.append((a[0], ret, a[1:]))
            ret = ""
        elif line.startswith(".Fo "):
            fo = (mdoc_args(line[4:])[0], ret, [])
            ret = ""
        elif line.startswith(".Fa ") and fo is not None:
            fo[2].extend(mdoc_args(line[4:]))
        elif line.startswith(".Fc") and fo is not None:
            out.append(fo)
            fo = None
    return out


def unescape(text):
    text = text.replace("\\&", "").replace("\\-", "-").replace("\\e", "\\")
    text = text.replace("\\(aq", "'").replace("\\(dq", '"')
    return text


def literal_blocks(lines):
    blocks, cur = [], None
    for line in lines:
        if line.startswith(".Bd -literal"):
            cur = []
        elif line.startswith(".Ed") and cur is not None:
            blocks.append("\n".join(cur) + "\n")
            cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--sanitize", default="")
    ap.add_argument("--nicsim", default="")
    ap.add_argument("--torture", default="")
    o = ap.parse_args()

    pages = sorted(glob.glob(os.path.join(o.src, "man", "*.[1-9]")))
    if not pages:
        fail("no pages in %s/man" % o.src)
        return 1
    print("pages: " + " ".join(os.path.basename(p) for p in pages))

    # (a) lint
    mandoc = shutil.which("mandoc")
    if mandoc:
        for p in pages:
            r = subprocess.run([mandoc, "-Tlint", "-W", "warning", p], capture_output=True, text=True)
            if r.stdout.strip() or r.stderr.strip():
                fail("mandoc -Tlint -W warning %s:\n%s%s" % (os.path.basename(p), r.stdout, r.stderr))
        print("(a) lint: %d pages checked" % len(pages))
    else:
        print("(a) lint SKIPPED: mandoc is not installed (apt-get install mandoc; scripts/deps.sh does)")

    # (b) pages against headers
    hdr = header_functions(o.src)
    documented = {}
    for p in pages:
        base = os.path.basename(p)
        sec = parse_page(p)
        if not base.endswith(".3"):
            continue
        names = set()
        for line in sec.get("NAME", []):
            if line.startswith(".Nm "):
                names.update(a.rstrip(",") for a in mdoc_args(line[4:]) if a != ",")
        fns = synopsis_functions(sec.get("SYNOPSIS", []))
        for name, ret, args in fns:
            if name in documented:
                fail("%s: %s is also in the SYNOPSIS of %s" % (base, name, documented[name]))
            documented[name] = base
            if name not in names:
                fail("%s: %s is in the SYNOPSIS but not a .Nm of NAME (no man link)" % (base, name))
            if name not in hdr:
                fail("%s: %s is documented but declared in no public header" % (base, name))
                continue
            kind, hret, hargs, hpath = hdr[name]
            if kind == "macro":
                if [norm(a) for a in args] != [norm(a) for a in hargs]:
                    fail("%s: macro %s(%s) but the header has (%s)" % (base, name, ", ".join(args), ", ".join(hargs)))
                continue
            page_proto = norm("%s %s(%s)" % (ret, name, ", ".join(args)))
            hdr_proto = norm("%s %s(%s)" % (hret, name, ", ".join(hargs)))
            if page_proto != hdr_proto:
                fail("%s: prototype differs from %s:\n  page:   %s\n  header: %s"
                     % (base, os.path.relpath(hpath, o.src), page_proto, hdr_proto))
        fnames = {f[0] for f in fns}
        for n in sorted(names - fnames - {base[:-2]}):
            fail("%s: .Nm %s in NAME is not a function of its SYNOPSIS" % (base, n))
    for name in sorted(set(hdr) - set(documented)):
        fail("%s (%s) is in no page's SYNOPSIS" % (name, os.path.relpath(hdr[name][3], o.src)))
    print("(b) %d public kernel-style functions and macros in the headers; %d documented"
          % (len(hdr), len(documented)))

    for program, name in ((o.nicsim, "kcont-nicsim"), (o.torture, "kcont-torture")):
        if not program:
            continue
        page = os.path.join(o.src, "man", name + ".1")
        text = open(page).read()
        helptext = subprocess.run([program, "--help"], capture_output=True, text=True).stdout
        opts = sorted(set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", helptext, re.M)))
        if not opts:
            fail("%s --help lists no option" % name)
        for opt in opts:
            if not re.search(r"^\.It Fl -%s\b" % re.escape(opt), text, re.M):
                fail("%s.1: option --%s (from --help) is not an .It Fl entry" % (name, opt))
        print("(b) %s.1: %d options of --help checked" % (name, len(opts)))

    # (c) examples
    examples = []
    for p in pages:
        if not p.endswith(".3"):
            continue
        for i, block in enumerate(literal_blocks(parse_page(p).get("EXAMPLES", []))):
            examples.append(("%s-%d" % (os.path.basename(p)[:-2], i + 1), unescape(block)))
    for p in pages:
        if p.endswith(".3") and not literal_blocks(parse_page(p).get("EXAMPLES", [])):
            fail("%s: no example program in EXAMPLES" % os.path.basename(p))
    shutil.rmtree(o.scratch, ignore_errors=True)
    os.makedirs(o.scratch)
    prefix = os.path.join(o.scratch, "prefix")
    r = subprocess.run(["cmake", "--install", o.build, "--prefix", prefix], capture_output=True, text=True)
    if r.returncode != 0:
        fail("cmake --install failed:\n" + r.stdout + r.stderr)
        return report()
    pc = glob.glob(os.path.join(prefix, "**", "kcont.pc"), recursive=True)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc[0]))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "kcont"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    extra = {"thread": ["-fsanitize=thread"],
             "address": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]}.get(o.sanitize, [])
    cxx = os.environ.get("CXX", "c++")
    for name, code in examples:
        if "int main(" not in code:
            fail("%s: an EXAMPLES block is not a complete program (no int main)" % name)
            continue
        srcf = os.path.join(o.scratch, name + ".cpp")
        exe = os.path.join(o.scratch, name)
        open(srcf, "w").write(code)
        r = subprocess.run([cxx, "-O1", "-Wall", "-Wextra", "-Werror", *extra, srcf, "-o", exe, *flags],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("%s: does not compile (%s):\n%s" % (name, srcf, r.stderr[-4000:]))
            continue
        try:
            r = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            fail("%s: did not finish within 60 s" % name)
            continue
        if r.returncode != 0:
            fail("%s: exit status %d\n%s%s" % (name, r.returncode, r.stdout, r.stderr))
        else:
            print("(c) %s: compiled and ran: %s" % (name, r.stdout.strip().replace("\n", " | ")[:200]))
    print("(c) %d example programs" % len(examples))
    rc = report()
    if rc == 0 and not mandoc:
        return 77
    return rc


def report():
    if failures:
        print("\n%d failure(s)" % len(failures))
        return 1
    print("manual pages check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
