#!/usr/bin/env python3
"""Writes the shipped application signatures (profile/signatures/*.json) from
the reports bench/vm/derive-signatures.py made of real traces.

Usage: bench/vm/make-signatures.py REPORT.json [OUT_DIR]   (default profile/signatures)

For each application of the report (linux-boot, postgresql, mysql, nginx,
redis) the signature's `needs` become the files every traced start read, in
the order they were first read (the plan fetches a phase's files in listed
order), with the report's phase, priority critical. The `detect` rules,
`always` and the description of the existing file are kept. Left out:
  * big files read sparsely (over 1 MiB, less than half read: a database's
    log, ICU data): a signature names whole files, and these would cost more
    than they save; a VM's own history or another VM's teaches the bytes
    actually read (LearnedPath ranges, docs/signatures.md);
  * paths with glob characters (they would not mean themselves).
Version components that differ between images are generalized: the kernel
release in /usr/lib/modules/RELEASE/ and /boot/*-RELEASE.
"""
import json
import os
import re
import sys

SPARSE_MIN_SIZE = 1 << 20
SPARSE_READ_SHARE = 0.5


def generalize(path):
    path = re.sub(r"^/usr/lib/modules/[^/]+/", "/usr/lib/modules/*/", path)
    path = re.sub(r"^/lib/modules/[^/]+/", "/lib/modules/*/", path)
    path = re.sub(r"^/boot/(vmlinuz|initrd\.img|config|System\.map)-.+$", r"/boot/\1-*", path)
    return path


def render(sig):
    """The signature as an operator would write it: one key, detect rule or path a line."""
    c = lambda v: json.dumps(v, ensure_ascii=False)
    lines = ["{"]
    keys = list(sig.keys())
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = sig[key]
        if key == "detect":
            rules = ",\n".join("    " + c(r) for r in value)
            lines.append(f'  "detect": [\n{rules}\n  ]{comma}')
        elif key == "needs":
            needs = []
            for need in value:
                head = ", ".join(f"{c(k)}: {c(v)}" for k, v in need.items() if k not in ("paths", "packages"))
                parts = []
                for k in ("paths", "packages"):
                    if k in need:
                        items = ",\n".join("      " + c(p) for p in need[k])
                        parts.append(f'{c(k)}: [\n{items}\n    ]')
                needs.append("    {" + head + (", " if parts else "") + ", ".join(parts) + "}")
            lines.append('  "needs": [\n' + ",\n".join(needs) + f"\n  ]{comma}")
        else:
            lines.append(f"  {c(key)}: {c(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    report_path = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) == 3 else os.path.join(os.path.dirname(__file__), "../../profile/signatures")
    report = json.load(open(report_path))
    sessions = len(report["sessions"])
    traces = ", ".join(s["trace"] for s in report["sessions"])
    for app, data in report["applications"].items():
        target = os.path.join(out_dir, app + ".json")
        sig = json.load(open(target))
        files = sorted(data["files"], key=lambda f: (f["first_read_s"], f["path"]))
        paths, seen, sparse = [], set(), 0
        for f in files:
            if f["support"] < 1.0:
                continue
            if f["kind"] == "regular" and f["size"] > SPARSE_MIN_SIZE and f["bytes_read"] < SPARSE_READ_SHARE * f["size"]:
                sparse += 1
                continue
            if any(c in f["path"] for c in "*?[]"):
                continue
            p = generalize(f["path"])
            if p not in seen:
                seen.add(p)
                paths.append(p)
        phases = {f["phase"] for f in files}
        phase = "boot" if app == "linux-boot" else ("service-start" if "service-start" in phases else "steady")
        sig["needs"] = [{"phase": phase, "priority": "critical", "paths": paths}]
        sig["source"] = (f"derived by bench/vm/make-signatures.py from {os.path.basename(report_path)} "
                         f"(bench/vm/derive-signatures.py): the files all {sessions} traced starts of image "
                         f"{report['image']['name']} read ({traces}; bench/traces/{report['image']['name']}), "
                         f"in first-read order; {sparse} big files read sparsely left to learning")
        with open(target + ".tmp", "w") as out:
            out.write(render(sig))
        os.replace(target + ".tmp", target)
        print(f"{target}: {len(paths)} paths ({sparse} sparse files left out)")


if __name__ == "__main__":
    main()
