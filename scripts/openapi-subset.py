#!/usr/bin/env python3
"""Cuts a provider's OpenAPI description down to the operations SAM's
emulators answer, keeping every component they reference (transitively), so
the contract tests can vendor a small, reviewable file instead of a
multi-megabyte one. The operations kept are byte-for-byte the provider's.

    scripts/openapi-subset.py FULL.json OPERATIONS.txt OUT.json

OPERATIONS.txt: one `METHOD /path/{template}` per line (`#` comments).
"""
import json
import sys


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def resolve(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def main(full_path, operations_path, out_path):
    doc = json.load(open(full_path))
    wanted = []
    for line in open(operations_path):
        line = line.split("#", 1)[0].strip()
        if line:
            method, path = line.split(None, 1)
            wanted.append((method.lower(), path))
    paths = {}
    for method, path in wanted:
        item = doc["paths"].get(path)
        if item is None or method not in item:
            sys.exit(f"{method.upper()} {path} is not in {full_path}")
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k in ("parameters", "summary", "description")})
        kept[method] = item[method]
    out = {k: doc[k] for k in ("openapi", "info", "servers", "security") if k in doc}
    out["paths"] = paths
    # Components reached from the kept operations, transitively.
    pending, seen = set(), set()
    refs(paths, pending)
    components = {}
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref[2:].split("/")
        if parts[0] != "components" or len(parts) != 3:
            continue
        node = resolve(doc, ref)
        components.setdefault(parts[1], {})[parts[2].replace("~1", "/").replace("~0", "~")] = node
        refs(node, pending)
    if "securitySchemes" in doc.get("components", {}):
        components["securitySchemes"] = doc["components"]["securitySchemes"]
    out["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
