"""The command blocks of the documentation, for tests/doc.sh.

    docblocks.py OUTDIR FILE...

README-style Markdown: fenced ```sh (or shell, bash) and ```python blocks, and indented (4 spaces) blocks whose
first command is a known program. Man pages: the .nf/.fi and .EX/.EE blocks of the EXAMPLES section, groff
escapes undone; in a shell block, a line that neither starts with a known program nor continues the command
before it (indented, or after a line ending in | \\ && ||) is shown output and is left out.

A block holding a comment "# (needs SOMETHING)" cannot run here: it is listed as skipped, with SOMETHING as the
reason. Blocks that are not commands (diagrams, output, synopses with [--option]) are counted, not run.

Writes OUTDIR/NNN.sh or NNN.py per command block and OUTDIR/index.tsv: number, kind (sh, python, skip),
source file:line, reason (for skip).
"""
import os
import re
import sys

COMMANDS = {
    "lx-tokenize", "lx-featpack", "lx-encode", "lx-head", "lx-attnviz", "lx-convert", "lx-train", "lx-detect", "lx-merge",
    "make", "python3", "/usr/bin/python3", "parallel", "huggingface-cli", "cp", "printf", "echo", "jq", "grep",
    "split", "cat", "cc", "mkdir", "cd", "ls", "head", "for", "sh", "bash", "rm", "mv", "./pooled",
}
NEEDS = re.compile(r"#\s*\((needs [^)]*)\)")


def first_word(line):
    w = line.split()
    return w[0] if w else ""


def is_command(line):
    return first_word(line) in COMMANDS


def markdown_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i, out = 0, []
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append((i + 2, m.group(1), "\n".join(lines[i + 1:j])))
            i = j + 1
            continue
        if lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or (not lines[j].strip() and j + 1 < len(lines)
                                                                    and lines[j + 1].startswith("    "))):
                j += 1
            out.append((i + 1, "indented", "\n".join(l[4:] for l in lines[i:j])))
            i = j
            continue
        i += 1
    for line, info, text in out:
        body = [l for l in text.split("\n") if l.strip() and not l.lstrip().startswith("#")]
        if info == "python":
            yield line, "python", text
        elif info in ("sh", "shell", "bash"):
            yield line, "sh", text
        elif info == "indented" and body and is_command(body[0]) and not re.search(r" \[--?\w", text):
            yield line, "sh", text
        else:
            yield line, "other", text


def unescape(s):
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\").replace("\\&", "")
    return s


def man_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    in_ex = False
    block, start = None, 0
    for n, l in enumerate(lines, 1):
        if l.startswith(".SH"):
            in_ex = l.split(None, 1)[1:] in (["EXAMPLES"], ["EXAMPLE"])
            continue
        if not in_ex:
            continue
        if l.startswith((".nf", ".EX")):
            block, start = [], n + 1
        elif l.startswith((".fi", ".EE")) and block is not None:
            text = [unescape(x) for x in block]
            if text and re.match(r"(import|from) ", text[0]):
                yield start, "python", "\n".join(text)
            else:
                kept, cont = [], False
                for x in text:
                    if cont or is_command(x) or x.startswith("#") or x[:1].isspace():
                        kept.append(x)
                    cont = bool(re.search(r"(\||\\|&&|\|\|)\s*$", x))
                yield start, "sh" if kept else "other", "\n".join(kept)
            block = None
        elif block is not None and not l.startswith("."):
            block.append(l)


def main(outdir, files):
    os.makedirs(outdir, exist_ok=True)
    n = 0
    with open(os.path.join(outdir, "index.tsv"), "w") as idx:
        for path in files:
            blocks = man_blocks(path) if re.search(r"\.\d$", path) else markdown_blocks(path)
            for line, kind, text in blocks:
                n += 1
                where = "%s:%d" % (os.path.basename(path), line)
                needs = NEEDS.search(text)
                if kind == "other":
                    idx.write("%03d\tother\t%s\t\n" % (n, where))
                    continue
                if needs:
                    idx.write("%03d\tskip\t%s\t%s\n" % (n, where, needs.group(1)))
                    continue
                ext = "py" if kind == "python" else "sh"
                with open(os.path.join(outdir, "%03d.%s" % (n, ext)), "w") as f:
                    f.write(text + "\n")
                idx.write("%03d\t%s\t%s\t\n" % (n, kind, where))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
