"""BENCHMARKS.md is one file with sections owned by different scripts, each between
<!-- NAME:begin --> and <!-- NAME:end -->: replace_section writes one and leaves the rest."""


def replace_section(path, name, section):
    """Puts `section` (which starts and ends with NAME's markers) in place of NAME's old one, or at the end."""
    text = open(path).read()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path, "w").write(text)
