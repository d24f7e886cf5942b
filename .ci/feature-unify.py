#!/usr/bin/env python3
"""Keeps runtime/feature-unify/Cargo.toml true (see the comment there).

    python3 .ci/feature-unify.py           check: exit 1 naming every crate whose
                                           features differ between the lean build
                                           (`-p ganglion --no-default-features`) and
                                           the workspace test build
    python3 .ci/feature-unify.py --write   regenerate the crate's dependencies

Only `cargo tree` runs (no build): a few seconds.
"""

import re, subprocess, sys, json

def tree(args, edges):
    out = subprocess.run(["cargo", "tree", "-e", edges, "-f", "{p} [{f}]", "--target", "x86_64-unknown-linux-gnu"] + args,
                         capture_output=True, text=True, check=True).stdout
    res = {}
    stack = []
    section_at = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        col = next(i for i, ch in enumerate(line) if ch.isalnum() or ch == '[')
        text, depth = line[col:], col // 4
        for d in list(section_at):
            if d > depth:
                del section_at[d]
        if text.startswith('[build-dependencies]') or text.startswith('[dev-dependencies]'):
            section_at[depth + 1] = 'build' if 'build' in text else 'dev'
            continue
        m = re.match(r'(\S+) v(\S+)( \(proc-macro\))?(?: \([^)]*\))? \[([^\]]*)\]', text)
        if not m:
            continue
        name, ver, pm, feats = m.group(1), m.group(2), bool(m.group(3)), m.group(4)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if depth == 0:
            section_at.clear()
        host = (stack[-1][1] if stack else False) or section_at.get(depth) == 'build' or pm
        stack.append((depth, host))
        res.setdefault((name, ver, 'host' if host else 'target'), set()).update(f for f in feats.split(',') if f)
    return res


MANIFEST = "runtime/feature-unify/Cargo.toml"
MARKER = "# @generated below by .ci/feature-unify.py"


def differences():
    lean = tree(["-p", "ganglion", "--no-default-features"], "normal,build")
    full = tree(["--workspace"], "normal,build,dev")
    out = []
    for key, feats in sorted(lean.items()):
        if key[0].startswith("ganglion"):
            continue  # the workspace's own crates differ by design
        other = full.get(key)
        if other is not None and other != feats:
            out.append((key, feats, other))
    return out, full


def write(full, diffs):
    """Dependencies on the union of features of every crate that differs
    (plus those already listed, so the file is a fixed point)."""
    text = open(MANIFEST).read()
    head = text.split(MARKER)[0] + MARKER + "\n"
    wanted = {key: full[key] for key, _, _ in diffs}
    for section, side in (("dependencies", "target"), ("build-dependencies", "host")):
        for line in text.split(MARKER)[1].split("[" + section + "]")[-1].splitlines() if "[" + section + "]" in text else []:
            m = re.match(r'(\S+) = \{ package = "([^"]+)", version = "([^"]+)"', line)
            if m and (m.group(2), m.group(3), side) in full:
                wanted.setdefault((m.group(2), m.group(3), side), full[(m.group(2), m.group(3), side)])
    versions = {}
    for (name, ver, _side) in wanted:
        versions.setdefault(name, set()).add(ver)
    body = ""
    for section, side in (("dependencies", "target"), ("build-dependencies", "host")):
        rows = sorted(k for k in wanted if k[2] == side)
        if not rows:
            continue
        body += "\n[" + section + "]\n"
        for name, ver, _ in rows:
            feats = wanted[(name, ver, side)]
            alias = name if len(versions[name]) == 1 else name + "_" + "_".join(ver.split(".")[:2])
            extra = sorted(f for f in feats if f != "default")
            body += (f'{alias} = {{ package = "{name}", version = "{ver}", default-features = {str("default" in feats).lower()}, '
                     f'features = {json.dumps(extra)} }}\n')
    open(MANIFEST, "w").write(head + body)


def main():
    diffs, full = differences()
    if "--write" in sys.argv:
        write(full, diffs)
        print(f"{MANIFEST}: {len(diffs)} crates differed; regenerated")
        return
    if diffs:
        for (name, ver, side), lean_f, full_f in diffs:
            print(f"{name} {ver} ({side}): lean build lacks {sorted(full_f - lean_f)}"
                  + (f", has extra {sorted(lean_f - full_f)}" if lean_f - full_f else ""))
        sys.exit(f"{len(diffs)} crates would be compiled twice in CI: run `python3 .ci/feature-unify.py --write`")
    print("feature-unify: the lean build reuses every dependency of the test build")


main()
