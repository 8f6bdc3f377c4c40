#!/usr/bin/env python3
"""Checks kcont's Markdown documentation (README.md, docs/*.md). CTest `test_docs`, label `docs`.

Usage: check_docs.py [--src SOURCE_DIR]     (default: the source tree this script is in)

README.md is the front door; the long texts live in docs/ (semantics.md, reliability.md,
benchmarks.md) and in the manual pages. Moving text between them breaks links silently, so
this check keeps them current. What it checks (every failure is listed; exit 1 if any, else 0):

(a) Links resolve. Every relative link or image in README.md and docs/*.md -- `[text](target)`,
    `![alt](target)` and reference definitions `[label]: target`, outside fenced code blocks
    and inline code spans -- points to a file or directory that exists, resolved against the
    directory of the Markdown file (a target starting with `/` against SOURCE_DIR), and stays
    inside SOURCE_DIR. Links with a scheme (https:, mailto:, ...) are not followed.

(b) Anchors resolve. A `#anchor` in such a link -- same-file (`#x`) or cross-file
    (`docs/semantics.md#x`) -- must name a heading of the target Markdown file, with GitHub's
    rule for heading anchors: the heading's text as rendered (inline code and emphasis marks
    and link targets removed), lower-cased, every character dropped that is not a letter, a
    digit, a space, `-` or `_`, and each space turned into `-`; a repeated heading gets `-1`,
    `-2`, ... in order. Explicit `<a name=...>` / `id=...` anchors count too. An anchor on a
    link to a file that is not Markdown is reported (nothing can check it).

(c) Every manual page is linked from README.md: each man/*.1 and man/*.3 is the target of
    some link in README.md.

(d) Every public header is named in README.md's faces table: the table under the heading
    `## Faces` names each SOURCE_DIR/*/include/kcont/*.h as `<kcont/NAME.h>` in one of its
    rows (kcont's internal headers live under softint/internal/ and headers under detail/ are
    not matched by the pattern). Conversely every `<kcont/NAME.h>` the table names exists.

Standard library only (Python 3.6 or later); no build tree needed.
"""
import argparse
import glob
import os
import re
import sys
import urllib.parse

INTERNAL_HEADERS = set()  # none left under include/kcont/ (see softint/internal/)

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


# ---- Markdown, as far as links and headings need it ----------------------------------------

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFDEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_lines(text):
    """Yields (line number, line, in_fence) for each line of a Markdown file."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            yield n, line, True
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            yield n, line, True
            continue
        yield n, line, False


def rendered_text(s):
    """The text of an inline Markdown fragment as GitHub renders it (roughly, enough for slugs)."""
    s = CODE_SPAN.sub(lambda m: m.group(2).strip(), s)
    s = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", s)  # links, images: text
    s = re.sub(r"<[^>]+>", "", s)  # HTML tags
    s = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", s)  # emphasis marks (not snake_case)
    return s


def slug(heading_text):
    s = rendered_text(heading_text).strip().lower()
    s = "".join(ch for ch in s if ch.isalnum() or ch in " -_")
    return s.replace(" ", "-")


_anchor_cache = {}


def anchors_of(path):
    """The set of anchors GitHub gives the headings (and explicit anchors) of a Markdown file."""
    if path in _anchor_cache:
        return _anchor_cache[path]
    text = open(path, encoding="utf-8").read()
    seen = {}
    result = set()

    def add(base):
        if base in seen:
            seen[base] += 1
            result.add("%s-%d" % (base, seen[base]))
        else:
            seen[base] = 0
            result.add(base)

    prev = None  # previous line, if it could be a setext heading's text
    for _, line, in_fence in markdown_lines(text):
        if in_fence:
            prev = None
            continue
        for m in HTML_ANCHOR.finditer(line):
            result.add(m.group(1))
        m = ATX.match(line)
        if m:
            add(slug(m.group(2) or ""))
            prev = None
            continue
        if prev is not None and SETEXT.match(line) and not line.lstrip().startswith("|"):
            add(slug(prev))
            prev = None
            continue
        stripped = line.strip()
        prev = stripped if stripped and not stripped.startswith(("|", ">", "-", "*")) else None
    _anchor_cache[path] = result
    return result


def links_of(path):
    """(line number, target) of every link, image and reference definition outside code."""
    text = open(path, encoding="utf-8").read()
    out = []
    for n, line, in_fence in markdown_lines(text):
        if in_fence:
            continue
        m = REFDEF.match(line)
        if m:
            out.append((n, m.group(2)))
            continue
        # Blank out code spans, keeping the rest of the line (a link's text may hold code).
        bare = CODE_SPAN.sub(lambda c: "`" * len(c.group(0)), line)
        for lm in LINK.finditer(bare):
            out.append((n, lm.group(2)))
    return out


# ---- the checks ----------------------------------------------------------------------------

def check_links(src, md_files):
    """(a) and (b). Returns the set of files README.md links to (absolute, normalised)."""
    readme_targets = set()
    nlinks = nanchors = 0
    for md in md_files:
        rel_md = os.path.relpath(md, src)
        for n, target in links_of(md):
            where = "%s:%d: link %s" % (rel_md, n, target)
            t = target[1:-1] if target.startswith("<") and target.endswith(">") else target
            if SCHEME.match(t) or t.startswith("//"):
                continue
            nlinks += 1
            path_part, _, frag = t.partition("#")
            path_part = urllib.parse.unquote(path_part)
            frag = urllib.parse.unquote(frag)
            if path_part == "":
                dest = md
            elif path_part.startswith("/"):
                dest = os.path.normpath(os.path.join(src, path_part.lstrip("/")))
            else:
                dest = os.path.normpath(os.path.join(os.path.dirname(md), path_part))
            if os.path.relpath(dest, src).startswith(".."):
                fail("%s: points outside the source tree (%s)" % (where, dest))
                continue
            if not os.path.exists(dest):
                fail("%s: %s does not exist" % (where, os.path.relpath(dest, src)))
                continue
            if os.path.basename(md) == "README.md" and os.path.dirname(md) == src:
                readme_targets.add(dest)
            if not frag:
                continue
            nanchors += 1
            if os.path.isdir(dest) or not dest.endswith(".md"):
                fail("%s: anchor #%s on %s, which is not a Markdown file"
                     % (where, frag, os.path.relpath(dest, src)))
                continue
            if frag not in anchors_of(dest):
                fail("%s: no heading with anchor #%s in %s"
                     % (where, frag, os.path.relpath(dest, src)))
    print("links: %d relative links, %d anchors in %d files"
          % (nlinks, nanchors, len(md_files)))
    return readme_targets


def check_man_linked(src, readme_targets):
    """(c)"""
    pages = sorted(glob.glob(os.path.join(src, "man", "*.1")) +
                   glob.glob(os.path.join(src, "man", "*.3")))
    if not pages:
        fail("no manual pages found under %s/man" % src)
    for page in pages:
        if os.path.normpath(page) not in readme_targets:
            fail("README.md: man/%s is not linked (add [NAME(N)](man/%s))"
                 % (os.path.basename(page), os.path.basename(page)))
    print("manual pages: %d, each must be linked from README.md" % len(pages))


def faces_table_rows(readme):
    """The table rows (lines starting with |) of README.md's `## Faces` section, or None."""
    rows = None
    for _, line, in_fence in markdown_lines(open(readme, encoding="utf-8").read()):
        if in_fence:
            continue
        m = ATX.match(line)
        if m:
            if rows is not None:
                break
            if len(m.group(1)) == 2 and (m.group(2) or "").strip().lower() == "faces":
                rows = []
            continue
        if rows is not None and line.lstrip().startswith("|"):
            rows.append(line)
    return rows


def check_faces(src, readme):
    """(d)"""
    headers = sorted(glob.glob(os.path.join(src, "*", "include", "kcont", "*.h")))
    public = sorted({os.path.basename(h) for h in headers} - INTERNAL_HEADERS)
    rows = faces_table_rows(readme)
    if rows is None:
        fail("README.md: no `## Faces` section")
        return
    if not rows:
        fail("README.md: the `## Faces` section has no table")
        return
    named = set()
    for row in rows:
        named.update(re.findall(r"<kcont/([A-Za-z0-9_./-]+\.h)>", row))
    for h in public:
        if h not in named:
            fail("README.md: the faces table does not name <kcont/%s>" % h)
    existing = {os.path.basename(h) for h in headers}
    for h in sorted(named):
        if h not in existing:
            fail("README.md: the faces table names <kcont/%s>, which is not a header in "
                 "*/include/kcont/" % h)
    print("headers: %d public, each must be named in README.md's faces table" % len(public))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
    args = ap.parse_args()
    src = os.path.abspath(args.src)
    readme = os.path.join(src, "README.md")
    if not os.path.isfile(readme):
        fail("%s does not exist" % readme)
        return 1
    md_files = [readme] + sorted(glob.glob(os.path.join(src, "docs", "*.md")))
    readme_targets = check_links(src, md_files)
    check_man_linked(src, readme_targets)
    check_faces(src, readme)
    if failures:
        print("check_docs: %d problem(s)" % len(failures))
        return 1
    print("check_docs: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
