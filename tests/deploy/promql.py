"""Small PromQL helpers for the deploy tests: which metric names and label
names an expression uses. Not a parser: strings, label matchers, ranges and
grouping clauses are blanked out first, then every identifier that is not a
keyword and is not called like a function is a metric name.
"""
import re

# Aggregations, functions and operators are followed by "(" and skipped by
# that rule; these keywords are not.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "Inf", "NaN", "atan2", "start", "end",
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _blank_strings(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", expr)


def metric_names(expr):
    s = _blank_strings(expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = GROUPING.sub(" ", s)
    names = set()
    for m in IDENT.finditer(s):
        before = s[m.start() - 1] if m.start() > 0 else " "
        if before.isalnum() or before == ".":
            continue  # the exponent of a number such as 1e-3
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or aggregation
        if m.group(0) in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def label_names(expr):
    """Labels named in matchers and in grouping clauses."""
    s = _blank_strings(expr)
    labels = set()
    for block in re.findall(r"\{([^}]*)\}", s):
        for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)", block):
            labels.add(m.group(1))
    for _, inner in GROUPING.findall(s):
        labels.update(x.strip() for x in inner.split(",") if x.strip())
    return labels


def parse_exposition(text):
    """{sample name: set of label names} and {family: type} from /metrics."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s", line)
        if not m:
            continue
        labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', m.group(3) or ""))
        samples.setdefault(m.group(1), set()).update(labels)
    return samples, types
