#!/usr/bin/env python3
"""check_layers.py - hold includes and CMake links to scripts/layers.conf.

Run by scripts/check-layers.sh (which makes the CMake graph); see
layers.conf for the rules. In the way of Chromium's checkdeps and Tor's
practracker includes.py: it only reads `#include "..."` lines, so it is fast
and has no notion of the preprocessor.

Usage: check_layers.py ROOT CONF [GRAPHVIZ.dot]
Prints one line per violation; exit status 1 if there were any.
"""
import os
import re
import sys

PRODUCT_DIRS = ["common", "ledger", "policy", "auth", "records", "cloud", "gateway", "client"]
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def parse_conf(path):
    """Returns (modules: {mod: (allowed set, forbidden headers set)},
    targets: {target: mod}, forbid: {target: [names]})."""
    modules, targets, forbid = {}, {}, {}
    section = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if ":" not in line:
                sys.exit(f"{path}:{lineno}: expected 'key: values'")
            key, _, rest = line.partition(":")
            keys, vals = key.split(), rest.split()
            if section == "modules":
                allowed = {v for v in vals if not v.startswith("-")}
                denied = {v[1:] for v in vals if v.startswith("-")}
                modules[keys[0]] = (allowed, denied)
            elif section == "targets":
                for k in keys:
                    targets[k] = vals[0]
            elif section == "forbid-link":
                forbid[keys[0]] = vals
            else:
                sys.exit(f"{path}:{lineno}: line outside a known section")
    for mod, (allowed, _) in modules.items():
        for a in allowed:
            if a not in modules:
                sys.exit(f"{path}: module {mod} allows unknown module {a}")
    for t, mod in targets.items():
        if mod not in modules:
            sys.exit(f"{path}: target {t} maps to unknown module {mod}")
    return modules, targets, forbid


def module_of(path, modules):
    """The longest module directory that is a prefix of path, or None."""
    best = None
    for mod in modules:
        if path.startswith(mod + "/") and (best is None or len(mod) > len(best)):
            best = mod
    return best


def find_cycle(modules):
    """Kahn's toposort: keep removing modules that depend on nothing still
    left. Whatever remains holds a cycle; walk it and return it (or None)."""
    left = {m: set(a) - {m} for m, (a, _) in modules.items()}
    while True:
        free = [m for m, deps in left.items() if not deps & left.keys()]
        if not free:
            break
        for m in free:
            del left[m]
    if not left:
        return None
    start = next(iter(sorted(left)))
    path, seen = [start], {start: 0}
    while True:
        nxt = sorted(d for d in left[path[-1]] if d in left)[0]
        if nxt in seen:
            return path[seen[nxt]:] + [nxt]
        seen[nxt] = len(path)
        path.append(nxt)


def check_includes(root, modules):
    errors = []
    for top in PRODUCT_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                mod = module_of(rel, modules)
                if mod is None:
                    errors.append(f"{rel}: file in no module of layers.conf")
                    continue
                allowed, denied = modules[mod]
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE_RE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        to = module_of(inc, modules)
                        where = f"{rel}:{lineno}: #include \"{inc}\""
                        if to == mod:
                            continue
                        if to is None:
                            errors.append(f"{where}: not a module header (spell it from the root)")
                        elif to not in allowed:
                            errors.append(f"{where}: {mod} may not use {to} (layers.conf)")
                        elif os.path.basename(inc).endswith("_internal.h"):
                            errors.append(f"{where}: internal header of {to}")
                        elif inc in denied:
                            errors.append(f"{where}: forbidden to {mod} (layers.conf)")
    return errors


def parse_graphviz(path):
    """Returns {label: set(dependency labels)} from cmake --graphviz."""
    label, deps = {}, {}
    node_re = re.compile(r'^\s*"(node\d+)"\s*\[\s*label\s*=\s*"([^"]*)"')
    edge_re = re.compile(r'^\s*"(node\d+)"\s*->\s*"(node\d+)"')
    edges = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = edge_re.match(line)
            if m:
                edges.append(m.groups())
                continue
            m = node_re.match(line)
            if m:
                label[m.group(1)] = m.group(2)
    for a, b in edges:
        deps.setdefault(label[a], set()).add(label[b])
    for name in label.values():
        deps.setdefault(name, set())
    return deps


def closure(deps, target):
    seen, todo = set(), [target]
    while todo:
        for d in deps.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def matches(name, node):
    """Does a forbid-link name match a graph node label?"""
    if node == name:
        return True
    if name.startswith("lib"):
        base = os.path.basename(node)
        return node == "PkgConfig::" + name.upper() or base.startswith(name + ".")
    return False


def check_links(deps, modules, targets, forbid):
    errors = []
    for t in sorted(targets):
        if t not in deps:
            continue  # not built in this tree (yet)
        mod = targets[t]
        for d in sorted(deps[t]):
            to = targets.get(d)
            if to is None or to == mod or to in modules[mod][0]:
                continue
            errors.append(f"link {t} -> {d}: {mod} may not use {to} (layers.conf)")
    for t, names in sorted(forbid.items()):
        if t not in deps:
            errors.append(f"link {t}: no such CMake target (layers.conf [forbid-link])")
            continue
        reach = closure(deps, t)
        for name in names:
            bad = sorted(n for n in reach if matches(name, n))
            if bad:
                errors.append(f"link {t}: its link closure has {', '.join(bad)} (forbidden: {name})")
    return errors


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    root, conf = sys.argv[1], sys.argv[2]
    modules, targets, forbid = parse_conf(conf)
    errors = []
    cycle = find_cycle(modules)
    if cycle:
        errors.append("layers.conf: modules allow each other in a cycle: " + " -> ".join(cycle))
    errors += check_includes(root, modules)
    if len(sys.argv) == 4:
        errors += check_links(parse_graphviz(sys.argv[3]), modules, targets, forbid)
    for e in errors:
        print("  " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
