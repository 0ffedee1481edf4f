#!/usr/bin/env python3
"""Keeps the repository self-contained.

Fails when
- any file of the repository (tracked, or new and not ignored) names the
  product spec or the planning notes that live outside the repository, or a
  path into the directory that holds them: what a maintainer needs from them
  belongs in docs/ (errors.md, operations.md, configuration.md, api.md);
- a relative link in a Markdown file points at a file that does not exist, or
  at a heading (#anchor) that the target file does not have.

Usage: check_docs.py REPO_ROOT. Prints one line per problem, then
"N passed, N failed" (one check per file read and one per link, as
scripts/test-summary.py counts); exit status 1 when there is any problem.
"""

import os
import re
import subprocess
import sys

# Spelled in pieces so that this file does not trip its own check.
FORBIDDEN = [
    "CONTRACT" + ".md",
    ".." + "/shared",
    "/work" + "/shared",
    "multi-database" + "-sprint",
]
SKIP_DIRS = {".git", "node_modules", "var", "__pycache__"}


def repo_files(root):
    """Paths relative to root: git's tracked and untracked-not-ignored files,
    or every file below root when git is not available."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout
        names = sorted({n.decode("utf-8", "replace") for n in out.split(b"\0") if n})
        return [n for n in names if os.path.isfile(os.path.join(root, n))]
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
            for f in files:
                found.append(os.path.relpath(os.path.join(d, f), root))
        return sorted(found)


def read_text(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", "replace")


def without_code(md):
    """The Markdown text with fenced blocks and inline code spans blanked, so
    that links and headings inside examples are not taken as real ones. Line
    numbers are kept."""
    lines = md.split("\n")
    out = []
    fence = None
    for line in lines:
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            out.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
            continue
        out.append(re.sub(r"(`+)(?:(?!\1).)+?\1", "", line))
    return out


def slug(heading):
    """GitHub's anchor for a heading text."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(md):
    seen = {}
    result = set()
    for line in without_code_headings(md):
        base = slug(line)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def without_code_headings(md):
    """Heading texts outside fenced code (inline code kept: it counts in the
    anchor, minus its backticks)."""
    fence = None
    for line in md.split("\n"):
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if h:
            yield h.group(1)


LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")


def check_links(root, name, text, problems, anchor_cache):
    """Appends a line to problems per broken link; returns the number of
    links checked."""
    base = os.path.dirname(name)
    checked = 0
    for lineno, line in enumerate(without_code(text), 1):
        targets = LINK.findall(line)
        m = REF.match(line)
        if m:
            targets.append(m.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            checked += 1
            path, _, frag = target.partition("#")
            if path:
                rel = os.path.normpath(os.path.join(base, path))
                full = os.path.join(root, rel)
                if rel.startswith("..") or not os.path.exists(full):
                    problems.append(f"{name}:{lineno}: link to {target}: no file {rel} in the repository")
                    continue
            else:
                rel = name
                full = os.path.join(root, rel)
            if frag and rel.endswith(".md") and os.path.isfile(full):
                if rel not in anchor_cache:
                    anchor_cache[rel] = anchors(read_text(full) or "")
                if frag.lower() not in anchor_cache[rel]:
                    problems.append(f"{name}:{lineno}: link to {target}: {rel} has no heading #{frag}")
    return checked


def main():
    if len(sys.argv) != 2:
        print("usage: check_docs.py REPO_ROOT", file=sys.stderr)
        return 2
    root = sys.argv[1]
    files = repo_files(root)
    if not any(f == "README.md" for f in files):
        print(f"check_docs: no README.md under {root}: wrong root?")
        return 1
    problems = []
    anchor_cache = {}
    md_count = 0
    links = 0
    for name in files:
        text = read_text(os.path.join(root, name))
        if text is None:
            continue
        for lineno, line in enumerate(text.split("\n"), 1):
            for word in FORBIDDEN:
                if word.lower() in line.lower():
                    problems.append(f"{name}:{lineno}: names {word}, which is outside the repository")
        if name.endswith(".md"):
            md_count += 1
            links += check_links(root, name, text, problems, anchor_cache)
    for p in problems:
        print(p)
    print(f"check_docs: {len(files)} files read, {links} links in {md_count} Markdown files, "
          f"{len(problems)} problems")
    checks = len(files) + links
    failed = min(len(problems), checks)
    print(f"{checks - failed} passed, {failed} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
