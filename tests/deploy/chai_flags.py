"""`chai serve --help` as data: {flag name: default or None}. The deploy
tests compare manifests and images with the binary's real flags, so a
renamed flag or a changed default breaks them."""
import re
import subprocess


def serve_flags(chai):
    out = subprocess.run([chai, "serve", "--help"], capture_output=True, text=True, check=True)
    flags = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s+--([a-z0-9-]+)(\s+VALUE)?\s+(.*)$", line)
        if not m:
            continue
        d = re.search(r"\(default ([^)]*)\)\s*$", m.group(3))
        flags[m.group(1)] = d.group(1) if d else None
    if "port" not in flags or "metrics-port" not in flags:
        raise RuntimeError("cannot read `chai serve --help`:\n" + out.stdout)
    return flags


def parse_duration_s(text):
    """chai serve's duration flags: 30s, 500ms, 2m, 1h30m or bare seconds."""
    if re.fullmatch(r"[0-9.]+", text):
        return float(text)
    total, pos = 0.0, 0
    for m in re.finditer(r"([0-9.]+)(ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"not a duration: {text!r}")
    return total


def args_to_flags(args):
    """['--a=1', '--b', '2', '--c'] -> {'a': '1', 'b': '2', 'c': ''}."""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise ValueError(f"stray argument {a!r}")
        if "=" in a:
            k, v = a[2:].split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            k, v = a[2:], args[i + 1]
            i += 1
        else:
            k, v = a[2:], ""
        out[k] = v
        i += 1
    return out
