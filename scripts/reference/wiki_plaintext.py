#!/usr/bin/env python3
"""Plain prose from a MediaWiki XML dump (the evaluation text of shared/ASSETS.md: gensim's
shortened enwiki test dump), for perplexity runs.

usage: wiki_plaintext.py DUMP.xml[.bz2] OUT.txt

Keeps main-namespace articles that are not redirects: the title, then each paragraph of the
body with the markup removed (templates, tables, references, comments, HTML tags, files and
categories dropped; links, bold/italic and headings reduced to their text). Lists and
lines that are left empty or hold only punctuation are dropped. Deterministic, so
fetch-models.sh can check the result's sha256.
"""
import bz2
import re
import sys
import xml.etree.ElementTree as ET


def strip_nested(text, open_, close):
    """Removes every (possibly nested) `open_ ... close` span."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif depth and text.startswith(close, i):
            depth -= 1
            i += len(close)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def link_text(m):
    inner = m.group(1)
    target = inner.split("|", 1)[0].strip().lower()
    if re.match(r"(file|image|category|media|[a-z]{2,3}(-[a-z]+)?):", target):
        return ""
    return inner.rsplit("|", 1)[-1]


def clean(wikitext):
    t = re.sub(r"<!--.*?-->", "", wikitext, flags=re.S)
    t = re.sub(r"<ref[^>]*/>", "", t)
    t = re.sub(r"<ref[^>]*>.*?</ref>", "", t, flags=re.S)
    t = re.sub(r"<(math|gallery|timeline|imagemap|syntaxhighlight|source)[^>]*>.*?</\1>", "", t, flags=re.S)
    t = strip_nested(t, "{{", "}}")
    t = strip_nested(t, "{|", "|}")
    # File/category links may contain nested links in their captions: drop innermost first.
    for _ in range(3):
        t = re.sub(r"\[\[([^\[\]]*)\]\]", link_text, t)
    t = re.sub(r"\[https?://[^\s\]]+\s*([^\]]*)\]", r"\1", t)
    t = re.sub(r"<[^>]+>", "", t)
    t = re.sub(r"'{2,}", "", t)
    t = re.sub(r"^=+\s*(.*?)\s*=+\s*$", r"\1", t, flags=re.M)
    t = t.replace("&nbsp;", " ").replace("&ndash;", "–").replace("&mdash;", "—")
    paragraphs = []
    for line in t.split("\n"):
        line = re.sub(r"[ \t]+", " ", line).strip()
        if not line or line[0] in "*#:;|![" or not re.search(r"\w{2,}", line):
            continue
        paragraphs.append(line)
    return paragraphs


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1:]
    opener = bz2.open if src.endswith(".bz2") else open
    out = []
    with opener(src, "rb") as fh:
        for _, el in ET.iterparse(fh):
            if not el.tag.endswith("}page") and el.tag != "page":
                continue
            ns = el.find("{*}ns")
            title = el.find("{*}title")
            text = el.find("{*}revision/{*}text")
            redirect = el.find("{*}redirect") is not None
            if ns is not None and ns.text == "0" and not redirect and text is not None and text.text:
                body = clean(text.text)
                if body:
                    out.append("\n\n".join([title.text.strip()] + body))
            el.clear()
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n\n".join(out) + "\n")


if __name__ == "__main__":
    main()
