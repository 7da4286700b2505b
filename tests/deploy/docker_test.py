#!/usr/bin/env python3
"""docker/Dockerfile.cpu and docker/Dockerfile.cuda, checked offline (no
Docker engine runs on the build machines).

Each Dockerfile is parsed into stages (continuations, comments, ARG
defaults) and must:
- have a build stage on Debian 12 whose RUN calls deploy/setup.sh and
  deploy/build.sh (the scripts CI runs), with only switches those scripts
  and CMake really have;
- end in a slim Debian 12 runtime stage that copies `chai` from the build
  stage, creates a non-root user and runs as it (USER), runs
  ENTRYPOINT ["chai", "serve"], has HEALTHCHECK `chai health` on --port, and
  EXPOSEs `chai serve`'s --port and --metrics-port defaults (read from
  `chai serve --help`); CMD's --model is where the build stage puts it;
- install, in the runtime stage, a Debian package for every shared library
  `ldd chai` resolves (mapped with `dpkg -S`), except packages every
  Debian 12 image has (Priority: required and what they depend on,
  computed with dpkg-query), each a real package; the CUDA image also
  cuBLAS, and the CUDA module needs nothing else (readelf NEEDED, when the
  module is built).
.dockerignore must keep build trees, caches and .git out of the context
and keep everything the build needs in.

Exits 77 (skip) without dpkg/ldd (not a Debian host), unless CI=true.
"""
import argparse
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
import chai_flags  # noqa: E402

# Loaded from the host's driver or the glibc of any image.
SYSTEM_SONAMES = re.compile(r"^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.)")
CUDA_MODULE_DEPS = {"libcublas.so.13", "libcublasLt.so.13"}


class Stage:
    def __init__(self, image, name):
        self.image, self.name = image, name
        self.instructions = []  # (KEYWORD, argument text)
        self.args = {}

    def all(self, keyword):
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(path):
    """Stages of a Dockerfile: [Stage], with ARG defaults substituted."""
    with open(path) as f:
        raw = f.read().split("\n")
    logical, cur = [], ""
    for line in raw:
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            logical.append(cur.strip())
        cur = ""
    global_args, stages = {}, []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            if stages:
                stages[-1].args[name] = default if default else global_args.get(name, "")
            else:
                global_args[name] = default
            continue
        if keyword == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            image = re.sub(r"\$\{(\w+)\}", lambda v: global_args.get(v.group(1), ""), m.group(1))
            stages.append(Stage(image, m.group(2)))
            continue
        if not stages:
            raise ValueError(f"{path}: {keyword} before FROM")
        st = stages[-1]
        text = re.sub(r"\$\{(\w+)\}", lambda v: st.args.get(v.group(1), v.group(0)), rest)
        st.instructions.append((keyword, text))
    return stages


def exec_form(text):
    text = re.sub(r"^(--\S+\s+)+", "", text.strip())  # HEALTHCHECK options
    if text.startswith("CMD "):
        text = text[4:].strip()
    if not text.startswith("["):
        return None
    import json
    return json.loads(text)


def apt_packages(run_text):
    """Packages of every `apt-get install` in a RUN."""
    pkgs = []
    for cmd in re.split(r"&&|;", run_text):
        words = shlex.split(cmd.replace("\\", " "))
        if "apt-get" in words and "install" in words:
            after = words[words.index("install") + 1:]
            pkgs += [w for w in after if not w.startswith("-") and "=" not in w]
    return pkgs


def dpkg_owners(paths):
    """{path: Debian package} with one `dpkg -S` (it is slow per call). Each
    path is tried as given, resolved, and across the /lib -> /usr/lib merge."""
    variants = {}
    for path in paths:
        cands = {path, os.path.realpath(path)}
        for p in list(cands):
            for a, b in (("/usr/lib/", "/lib/"), ("/lib/", "/usr/lib/")):
                if p.startswith(a):
                    cands.add(b + p[len(a):])
        for c in cands:
            variants[c] = path
    r = subprocess.run(["dpkg", "-S"] + sorted(variants), capture_output=True, text=True)
    owners = {}
    for line in r.stdout.splitlines():
        pkgs, _, found = line.partition(": ")
        if found in variants:
            owners[variants[found]] = pkgs.split(",")[0].split(":")[0].strip()
    return owners


def base_image_packages():
    """Priority: required packages and everything they depend on: what every
    Debian 12 image (debootstrap minbase, debian:12 and debian:12-slim)
    has."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Priority}\t${Depends}, "
                          "${Pre-Depends}\n"], capture_output=True, text=True, check=True).stdout
    deps, todo = {}, []
    for line in out.splitlines():
        name, prio, dep = line.split("\t")
        deps[name] = dep
        if prio == "required":
            todo.append(name)
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen or p not in deps:
            continue
        seen.add(p)
        for alt in deps[p].split(","):
            for choice in alt.split("|"):
                n = re.sub(r"\(.*?\)|:any", "", choice).strip()
                if n in deps:
                    todo.append(n)
                    break
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chai", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--cuda-module", default="")
    args = ap.parse_args()
    for tool in ("dpkg", "dpkg-query", "ldd"):
        if not shutil.which(tool):
            testlib.skip_or_fail(f"{tool} not found: the runtime package check needs a Debian host",
                                 ci_note="CI runs on Debian 12")
    src = args.source_dir
    checks = testlib.Checks()
    check, failures = checks.check, checks.failures

    flags = chai_flags.serve_flags(args.chai)
    port, metrics_port = flags["port"], flags["metrics-port"]
    with open(os.path.join(src, "deploy/setup.sh")) as f:
        setup_sh = f.read()
    with open(os.path.join(src, "CMakeLists.txt")) as f:
        cmake_text = f.read()
    with open(os.path.join(src, "kernels/cuda/CMakeLists.txt")) as f:
        cmake_text += f.read()

    # What `chai` needs at run time, by Debian package.
    ldd = subprocess.run(["ldd", args.chai], capture_output=True, text=True, check=True).stdout
    needed, unresolved, paths = set(), [], []
    for line in ldd.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if not m or SYSTEM_SONAMES.match(m.group(1)):
            continue
        if m.group(2) == "not":
            unresolved.append(m.group(1))
        else:
            paths.append(m.group(2))
    owners = dpkg_owners(paths)
    for p in paths:
        if p in owners:
            needed.add(owners[p])
        else:
            unresolved.append(p)
    check("every library chai links belongs to a Debian package", not unresolved, unresolved)
    base = base_image_packages()
    print(f"chai needs {len(needed)} packages: {' '.join(sorted(needed))}")
    print(f"{len(base)} packages are in every Debian 12 image "
          f"({' '.join(sorted(needed & base))} among them)")

    for variant in ("cpu", "cuda"):
        path = os.path.join(src, f"docker/Dockerfile.{variant}")
        rel = os.path.relpath(path, src)
        stages = parse_dockerfile(path)
        check(f"{rel}: multi-stage (build + runtime)", len(stages) >= 2,
              [s.name for s in stages])
        build, runtime = stages[0], stages[-1]
        check(f"{rel}: build stage is Debian 12", build.image == "debian:12", build.image)
        check(f"{rel}: runtime stage is slim Debian 12", runtime.image == "debian:12-slim",
              runtime.image)
        build_runs = " && ".join(build.all("RUN"))
        check(f"{rel}: build stage runs deploy/setup.sh", "./deploy/setup.sh" in build_runs)
        check(f"{rel}: build stage runs deploy/build.sh", "./deploy/build.sh" in build_runs)
        for var in set(re.findall(r"\b(CHAI_[A-Z_]+)=", build_runs)):
            check(f"{rel}: {var} is a switch of deploy/setup.sh",
                  f"${{{var}:-" in setup_sh, var)
        for opt in set(re.findall(r"-D(\w+)=", build_runs)):
            if opt.startswith("CMAKE_") or opt.startswith("CUDAToolkit"):
                continue
            check(f"{rel}: -D{opt} is a CMake option of the project", opt in cmake_text, opt)
        # Runtime stage.
        copies = runtime.all("COPY")
        check(f"{rel}: copies chai from the build stage to /usr/local/bin",
              any(c.startswith(f"--from={build.name} ") and c.endswith("/usr/local/bin/chai")
                  for c in copies), copies)
        produced = re.findall(r"\s(/out/\S+)", build_runs)
        for c in copies:
            m = re.match(r"--from=\S+\s+(\S+)\s", c)
            if m:
                check(f"{rel}: COPY source {m.group(1)} is made by the build stage",
                      any(p.rstrip("/").startswith(m.group(1).rstrip("/"))
                          or m.group(1).rstrip("/").startswith(p.rstrip("/")) for p in produced),
                      produced)
        users = runtime.all("USER")
        runs = " && ".join(runtime.all("RUN"))
        check(f"{rel}: runs as a non-root USER",
              users and users[-1].split(":")[0] not in ("root", "0"), users)
        uid = users[-1].split(":")[0] if users else ""
        check(f"{rel}: the USER is created in the image",
              re.search(rf"useradd\b[^&]*(--uid {uid}\b|\b{uid}$)", runs) is not None, uid)
        ep = exec_form(runtime.all("ENTRYPOINT")[-1]) if runtime.all("ENTRYPOINT") else None
        check(f"{rel}: ENTRYPOINT is [\"chai\", \"serve\"]", ep == ["chai", "serve"], ep)
        hc = runtime.all("HEALTHCHECK")
        hc_cmd = exec_form(hc[-1]) if hc else None
        check(f"{rel}: HEALTHCHECK runs chai health on --port {port}",
              hc_cmd is not None and hc_cmd[:2] == ["chai", "health"]
              and f"127.0.0.1:{port}" in hc_cmd, hc_cmd)
        exposed = set(" ".join(runtime.all("EXPOSE")).split())
        check(f"{rel}: EXPOSEs --port {port} and --metrics-port {metrics_port}",
              {port, metrics_port} <= exposed, exposed)
        cmd = exec_form(runtime.all("CMD")[-1]) if runtime.all("CMD") else []
        model = cmd[cmd.index("--model") + 1] if "--model" in cmd else ""
        check(f"{rel}: CMD's --model is under /models, where the build stage puts it",
              model.startswith("/models/") and os.path.basename(model) in build_runs, cmd)
        unknown = [f for f in chai_flags.args_to_flags(cmd) if f not in flags]
        check(f"{rel}: CMD passes only chai serve flags", not unknown, unknown)
        pkgs = set(apt_packages(runs))
        missing = sorted(needed - pkgs - base)
        check(f"{rel}: runtime packages provide every library of `ldd chai`", not missing,
              f"add {missing}")
        droppable = sorted((needed - base) & pkgs)
        check(f"{rel}: the package check notices any one of them missing",
              droppable and all(needed - (pkgs - {p}) - base for p in droppable), droppable)
        check(f"{rel}: runtime apt step uses --no-install-recommends and cleans its lists",
              "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists" in runs)
        debian_pkgs = sorted(p for p in pkgs
                             if not p.startswith("libcublas-") and not p.startswith("cuda-"))
        # Known to this host's dpkg (installed: they are what the -dev
        # packages pulled in) or to its apt lists.
        q = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\n"] + debian_pkgs,
                           capture_output=True, text=True)
        unknown_pkgs = [p for p in debian_pkgs if p not in q.stdout.split()
                        and subprocess.run(["apt-cache", "show", p],
                                           capture_output=True).returncode != 0]
        check(f"{rel}: every runtime package exists in Debian 12", not unknown_pkgs,
              unknown_pkgs)
        if variant == "cuda":
            check(f"{rel}: runtime installs cuBLAS for the CUDA module",
                  any(p.startswith("libcublas-") for p in pkgs), pkgs)
            env = " ".join(runtime.all("ENV"))
            dest = [c.split()[-1] for c in copies if "libchai_cuda_backend.so" in c]
            check(f"{rel}: CHAI_CUDA_MODULE points at the copied module",
                  dest and f"CHAI_CUDA_MODULE={dest[0]}" in env, (dest, env))
            check(f"{rel}: build stage builds the CUDA module", "-DCHAI_BUILD_CUDA=ON" in build_runs)
            if args.cuda_module and os.path.exists(args.cuda_module):
                out = subprocess.run(["readelf", "-d", args.cuda_module], capture_output=True,
                                     text=True).stdout
                deps = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", out))
                extra = sorted(d for d in deps - CUDA_MODULE_DEPS if not SYSTEM_SONAMES.match(d))
                check(f"{rel}: the CUDA module needs only cuBLAS beyond glibc", not extra,
                      extra)
            else:
                print(f"NOTE {rel}: no CUDA module in this build (CHAI_BUILD_CUDA off or "
                      f"nvcc missing): its NEEDED list was not checked")

    # .dockerignore.
    with open(os.path.join(src, ".dockerignore")) as f:
        patterns = [p.strip().rstrip("/") for p in f if p.strip() and not p.startswith("#")]

    def ignored(path):
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p)
                   for p in patterns)
    for p in (".git", "build", "build-deploy", ".cache", "models"):
        check(f".dockerignore keeps {p} out of the context", ignored(p))
    for p in ("CMakeLists.txt", "cmake", "engine", "kernels", "server", "proto", "deploy",
              "tests"):
        check(f".dockerignore keeps {p} in the context", not ignored(p))

    return checks.report()


if __name__ == "__main__":
    sys.exit(main())
