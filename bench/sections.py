"""BENCHMARKS.md is one file with sections owned by different scripts, each between
<!-- NAME:begin --> and <!-- NAME:end -->: replace_section writes one and leaves the rest."""
import re

_BEGIN = re.compile(r"<!-- ([A-Za-z0-9_.-]+):begin -->")


def replace_section(path, name, section, drop=()):
    """Puts `section` (which starts and ends with NAME's markers) in place of NAME's old one, or at the end.
    Sections named in `drop` go: the first of them that is there gives its place to NAME when NAME is
    not there yet (a section renamed stays where it was)."""
    text = open(path).read()
    for old in (n for n in drop if n != name and n in section_names(text)):
        if name in section_names(text):
            text = text.replace(section_text(text, old) + "\n", "", 1)
        else:
            text = text.replace(section_text(text, old), f"<!-- {name}:begin --><!-- {name}:end -->", 1)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path, "w").write(text)


def section_names(text):
    """The names of the sections in `text` that have both markers, in the order they appear."""
    return [m.group(1) for m in _BEGIN.finditer(text) if f"<!-- {m.group(1)}:end -->" in text[m.end():]]


def section_text(text, name):
    """NAME's section in `text`, its markers included."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    return text[text.index(begin):text.index(end, text.index(begin)) + len(end)]
