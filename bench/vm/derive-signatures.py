#!/usr/bin/env python3
"""Application signatures derived from real traces (issue 6).

Input: a guest image (root.raw of bench/vm/build-image.sh: ext2/3/4, raw or
what `affinityctl inspect` reads) and sessions recorded on it
(bench/vm/record-traces.sh: CSV `time_s,offset,length,op`, optionally
zstd-compressed). Output: a JSON report of which guest files each
application read, from which the signature files (profile/signatures/*.json)
are generated.

Which files a session read: `affinityctl inspect IMAGE --json --trace T.csv
...` (the guest inspector lays the reads over the image's file map: a read's
bytes count for the file whose data extents, or directory blocks, they fall
in; first-read time and bytes per file). Without it (--debugfs, or no
affinityctl with the inspect command), e2fsprogs' debugfs does the same for
the blocks the traces read (icheck, ncheck, stat). Reads of file-system
structures (superblock, group descriptors, bitmaps, inode tables, journal)
belong to no file: an inode-table block holds 16 inodes. They are counted
per session, not attributed.

How a file becomes an application's:
  * owned: its path is under one of the application's data or configuration
    directories (PostgreSQL's cluster, MariaDB's data directory: made by
    postinsts, so in no .list), or every dpkg package that lists it
    (/var/lib/dpkg/info/*.list in the image) belongs to the one application:
    by name (the package-name patterns in APPLICATIONS below), or as a
    dependency only it needs: the package is in the Depends/Pre-Depends
    closure (/var/lib/dpkg/status) of that application's packages and in no
    other application's closure nor in the closure of the system's own
    packages (Priority required or important, or outside all applications'
    closures): libicu72 is PostgreSQL's, but libssl3 is not when python3 is
    installed too, nor procps, which MariaDB pulls in. "owner" in the report
    says which rule: "directory", "package" or "dependency". An owned file gets
    phase "service-start" when its median first read is within the boot
    window, "steady" after it.
  * not owned, median first read within the boot window: "linux-boot", phase
    "boot" (systemd, libc, udev rules, ... and the shared libraries that more
    than one application or the system itself need).
  * not owned, later: the VM's own data; listed under "other", not carried.
Per file: "support" = share of the sessions that read it, "first_read_s" =
median (over the sessions that read it) of the time of its first read, in
seconds since the start of the session (the affinityfs mount; the guest's
first read is about 5 s later under TCG), "first_read_s_each" per session,
"bytes_read" = median bytes of it read (re-reads count again), "kind" and
"size" from debugfs stat, "packages" = the dpkg packages listing it.
Per session: "metadata_bytes" = bytes read of file-system structures,
"unattributed_bytes" = other bytes in no file (free blocks). With debugfs,
only the journal (and other inodes without a path) counts as metadata; the
inode tables, bitmaps and group descriptors are in "unattributed_bytes".
Signatures usually keep support >= 0.5 (profile/signature_learner.h); the
report lists every file so that the threshold stays the generator's choice.

Usage:
  bench/vm/derive-signatures.py --image /var/tmp/affinity-apps-a/root.raw \\
      [--affinityctl build/bin/affinityctl | --inspect-json SAVED.json | --debugfs] \\
      [--boot-window-s 60] [--name apps-a] [-o bench/vm/derived/apps-a.json] \\
      bench/traces/apps-a/services-1.csv.zst bench/traces/apps-a/services-2.csv.zst ...
Default: `affinityctl inspect` of --affinityctl, else build/bin/affinityctl of
this checkout when it has the inspect command, else debugfs. --inspect-json
takes a saved `affinityctl inspect IMAGE --json --trace ...` output of the
same traces, in the same order. -o - (the default) writes to stdout; with -o
FILE a summary per application goes to stderr.
Needs Python 3 (stdlib), zstd for .zst traces, and debugfs (e2fsprogs) on
the host: it reads the dpkg lists and status out of the image, and the kind
and size of the files read.
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

# application -> (dpkg package-name regex, guest directories it owns)
APPLICATIONS = {
    "postgresql": (r"^postgresql", ["/etc/postgresql/", "/etc/postgresql-common/", "/var/lib/postgresql/",
                                    "/var/log/postgresql/", "/var/run/postgresql/", "/run/postgresql/"]),
    "mysql": (r"^(mariadb|mysql-common$|galera)", ["/etc/mysql/", "/var/lib/mysql/", "/var/log/mysql/",
                                                    "/run/mysqld/"]),
    "nginx": (r"^(nginx|libnginx-mod)", ["/etc/nginx/", "/var/www/", "/var/lib/nginx/", "/var/log/nginx/"]),
    "redis": (r"^redis", ["/etc/redis/", "/var/lib/redis/", "/var/log/redis/"]),
}
LINUX_BOOT = "linux-boot"
MERGED_USR_DIRS = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")


def die(msg):
    sys.exit("derive-signatures: " + msg)


def norm_path(p):
    p = re.sub(r"/+", "/", p)
    return p[:-1] if len(p) > 1 and p.endswith("/") else p


# ---- debugfs ----

def debugfs(image, commands):
    """Runs debugfs commands (a list of lines) on image, returns stdout."""
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as cmd:
        cmd.write("\n".join(commands) + "\n")
        cmd.flush()
        try:
            r = subprocess.run(["debugfs", "-f", cmd.name, image], capture_output=True, text=True,
                               errors="replace")
        except FileNotFoundError:
            die("needs debugfs (e2fsprogs)")
    if r.returncode != 0:
        die("debugfs failed: " + r.stderr.strip()[-500:])
    return r.stdout


def debugfs_cat(image, path):
    r = subprocess.run(["debugfs", "-R", "cat \"%s\"" % path, image], capture_output=True)
    if r.returncode != 0 or not r.stdout:
        die("cannot read %s from the image (debugfs cat)" % path)
    return r.stdout.decode("utf-8", "replace")


def parse_stats(out, key):
    """{key: {"kind", "size"}} from debugfs stat outputs; key(line) names each."""
    info, cur = {}, None
    for line in out.splitlines():
        k = key(line)
        if k is not None:
            cur = k
            continue
        m = re.match(r"^Inode: (\d+)\s+Type: (\S+)", line)
        if m and cur is not None:
            info[cur] = {"inode": int(m.group(1)), "kind": m.group(2), "size": None}
            continue
        m = re.search(r"\bSize: (\d+)", line)
        if m and cur in info and info[cur]["size"] is None:
            info[cur]["size"] = int(m.group(1))
    return info


def stat_paths(image, paths):
    """{path: {"kind", "size"}} for guest paths (debugfs stat)."""
    def key(line):
        m = re.match(r'^debugfs: stat "(.*)"$', line)
        return m.group(1) if m else None
    return parse_stats(debugfs(image, ['stat "%s"' % p for p in paths if '"' not in p]), key)


def attribute_debugfs(image, sessions):
    """Per session {path: [first_read_s, bytes]} and its metadata / unattributed bytes, via debugfs."""
    m = re.search(r"Block size:\s+(\d+)", debugfs(image, ["stats"]))
    if not m:
        die("debugfs stats: no block size (not an ext2/3/4 file system at offset 0?)")
    bs = int(m.group(1))
    blocks = sorted({b for s in sessions for _, off, length in s["reads"]
                     for b in range(off // bs, (off + length - 1) // bs + 1)})
    batch = 400
    owner = {}
    out = debugfs(image, ["icheck " + " ".join(map(str, blocks[i:i + batch])) for i in range(0, len(blocks), batch)])
    for line in out.splitlines():
        m = re.match(r"^(\d+)\t(\d+)$", line)
        if m:
            owner[int(m.group(1))] = int(m.group(2))
    inodes = sorted(set(owner.values()))
    paths = {}
    out = debugfs(image, ["ncheck " + " ".join(map(str, inodes[i:i + batch])) for i in range(0, len(inodes), batch)])
    for line in out.splitlines():
        m = re.match(r"^(\d+)\t(/.*)$", line)
        if m:
            ino, p = int(m.group(1)), norm_path(m.group(2))
            if ino not in paths or p < paths[ino]:  # hard links: the first path
                paths[ino] = p
    results = []
    for s in sessions:
        files, metadata, unattributed = {}, 0, 0
        for t, off, length in s["reads"]:
            end = off + length
            for b in range(off // bs, (end - 1) // bs + 1):
                n = min(end, (b + 1) * bs) - max(off, b * bs)
                ino = owner.get(b)
                if ino is None:
                    unattributed += n
                elif ino not in paths:  # the journal, the resize inode: no path
                    metadata += n
                else:
                    f = files.setdefault(paths[ino], [t, 0])
                    f[1] += n
        results.append({"files": files, "metadata_bytes": metadata, "unattributed_bytes": unattributed})
    return "debugfs (icheck, ncheck)", bs, results


# ---- affinityctl inspect ----

def attribute_inspect(obj, sessions):
    """The same from `affinityctl inspect IMAGE --json --trace ...` output."""
    traces = obj.get("traces") if isinstance(obj, dict) else None
    if not isinstance(traces, list) or len(traces) != len(sessions):
        die("the inspect JSON has %s traces, %d were given" % (
            len(traces) if isinstance(traces, list) else "no", len(sessions)))
    results = []
    for s, t in zip(sessions, traces):
        name = os.path.basename(str(t.get("trace", "")))
        if name and name not in (s["trace"], s["trace"][:-4]):
            die("the inspect JSON's trace %s is not %s (give the traces in its order)" % (name, s["trace"]))
        if t.get("window_s", -1) not in (-1, None) and t["window_s"] >= 0:
            die("the inspect JSON was made with --window-s; this needs whole traces")
        files = {}
        for f in t["files"]:
            p = f["path"]
            if p.startswith("/"):
                files[norm_path(p)] = [float(f["first_read_s"]), int(f["bytes"])]
        metadata = int(t.get("metadata_bytes", 0))
        results.append({"files": files, "metadata_bytes": metadata,
                        "unattributed_bytes": int(t.get("unattributed_bytes", 0)) - metadata,
                        "reads_inspect": t.get("reads")})
    return "affinityctl inspect --json --trace", int(obj.get("block_size", 0)), results


def run_inspect(ctl, image, sessions):
    with tempfile.TemporaryDirectory(prefix="derive-signatures.") as tmp:
        args = [ctl, "inspect", image, "--json"]
        for s in sessions:  # inspect reads plain CSV
            p = os.path.join(tmp, s["trace"][:-4] if s["trace"].endswith(".zst") else s["trace"])
            with open(p, "wb") as f:
                f.write(s["csv"])
            args += ["--trace", p]
        r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        die("affinityctl inspect failed: " + (r.stderr or r.stdout).strip()[-500:])
    return json.loads(r.stdout)


def default_affinityctl():
    p = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin", "affinityctl")
    return os.path.normpath(p) if os.access(p, os.X_OK) else None


def has_inspect(ctl):
    return subprocess.run([ctl, "inspect", "--help"], capture_output=True).returncode == 0


# ---- dpkg ----

def read_dpkg_lists(image):
    """{package: [paths]} from the image's /var/lib/dpkg/info/*.list."""
    lists = {}
    with tempfile.TemporaryDirectory(prefix="derive-signatures.") as tmp:
        debugfs(image, ["rdump /var/lib/dpkg/info " + tmp])
        d = os.path.join(tmp, "info")
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if n.endswith(".list"):
                with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
                    lists[n[:-5].split(":")[0]] = f.read().splitlines()
    if not lists:
        die("no /var/lib/dpkg/info/*.list in the image")
    return lists


def path_owners(lists):
    """{guest path: set of packages}, with merged-/usr aliases (/lib/x -> /usr/lib/x)."""
    owners = {}
    for pkg, paths in lists.items():
        for p in paths:
            if not p.startswith("/"):
                continue
            p = norm_path(p)
            owners.setdefault(p, set()).add(pkg)
            if p.startswith(MERGED_USR_DIRS) or p in ("/bin", "/sbin", "/lib", "/lib64"):
                owners.setdefault("/usr" + p, set()).add(pkg)
    return owners


def read_dpkg_status(text):
    """{installed package: (priority, [[dependency alternatives]], set of provided names)}."""
    pkgs = {}
    for para in text.split("\n\n"):
        fields, last = {}, None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += " " + line.strip()
            elif ":" in line:
                last, v = line.split(":", 1)
                fields[last] = v.strip()
        if "Package" not in fields or not fields.get("Status", "").endswith(" installed"):
            continue
        deps = []
        for f in ("Depends", "Pre-Depends"):
            for group in fields.get(f, "").split(","):
                alts = [re.sub(r"[ (:].*", "", a.strip()) for a in group.split("|")]
                if alts and alts[0]:
                    deps.append(alts)
        provides = {re.sub(r"[ (:].*", "", x.strip()) for x in fields.get("Provides", "").split(",") if x.strip()}
        pkgs[fields["Package"]] = (fields.get("Priority", ""), deps, provides)
    return pkgs


def package_applications(status):
    """{package: (application, "package" | "dependency")} (see the header)."""
    providers = {}
    for name, (_, _, provides) in status.items():
        providers.setdefault(name, set()).add(name)
        for v in provides:
            providers.setdefault(v, set()).add(name)

    def closure(roots):
        seen, todo = set(), list(roots)
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            for alts in status[p][1]:
                for a in alts:  # every installed alternative
                    todo.extend(providers.get(a, ()))
        return seen

    direct = {}
    for name in status:
        hit = [app for app, (pattern, _) in APPLICATIONS.items() if re.search(pattern, name)]
        if hit:
            direct[name] = hit[0]
    closures = {app: closure([p for p, a in direct.items() if a == app]) for app in APPLICATIONS}
    in_apps = set().union(*closures.values())
    # The system's own: Priority required/important, and whatever no application pulls in.
    outside = closure([p for p, (prio, _, _) in status.items()
                       if p not in direct and (prio in ("required", "important") or p not in in_apps)])
    result = {p: (a, "package") for p, a in direct.items()}
    for app, c in closures.items():
        for p in c:
            if p in result or p in outside or any(p in closures[o] for o in closures if o != app):
                continue
            result[p] = (app, "dependency")
    return result


def application_of(path, packages, pkg_apps):
    """(application, rule) owning a guest path, or (None, None)."""
    for app, (_, dirs) in APPLICATIONS.items():
        if any(path.startswith(d) or path + "/" == d for d in dirs):
            return app, "directory"
    hits = [pkg_apps.get(p, (None, None)) for p in packages]
    apps = {a for a, _ in hits}
    if hits and len(apps) == 1 and None not in apps:
        return apps.pop(), "package" if any(r == "package" for _, r in hits) else "dependency"
    return None, None


# ---- traces ----

def read_trace(path):
    if path.endswith(".zst"):
        data = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    else:
        with open(path, "rb") as f:
            data = f.read()
    lines = data.decode().splitlines()
    if not lines or lines[0] != "time_s,offset,length,op":
        die("%s: not a time_s,offset,length,op trace" % path)
    reads = []
    for line in lines[1:]:
        t, off, length, op = line.split(",")
        if op == "R" and int(length) > 0:
            reads.append((float(t), int(off), int(length)))
    return {"trace": os.path.basename(path), "csv": data, "sha256_csv": hashlib.sha256(data).hexdigest(),
            "reads": reads}


def main():
    ap = argparse.ArgumentParser(description="Application signatures derived from real traces (see the header).")
    ap.add_argument("--image", required=True, help="the guest image the traces read (root.raw)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--affinityctl", help="affinityctl with the inspect command (default: build/bin/affinityctl)")
    src.add_argument("--inspect-json", help="saved `affinityctl inspect IMAGE --json --trace ...` of these traces")
    src.add_argument("--debugfs", action="store_true", help="map blocks to files with debugfs")
    ap.add_argument("--boot-window-s", type=float, default=60.0)
    ap.add_argument("--name", help="a name for the image in the report (default: its directory)")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("traces", nargs="+")
    a = ap.parse_args()

    image = os.path.abspath(a.image)
    sessions = [read_trace(t) for t in a.traces]
    if a.inspect_json:
        with open(a.inspect_json) as f:
            source, bs, results = attribute_inspect(json.load(f), sessions)
    elif a.debugfs:
        source, bs, results = attribute_debugfs(image, sessions)
    else:
        ctl = a.affinityctl or default_affinityctl()
        if ctl and has_inspect(ctl):
            source, bs, results = attribute_inspect(run_inspect(ctl, image, sessions), sessions)
        elif a.affinityctl:
            die("%s has no inspect command" % a.affinityctl)
        else:
            print("derive-signatures: no affinityctl with inspect; using debugfs", file=sys.stderr)
            source, bs, results = attribute_debugfs(image, sessions)

    lists = read_dpkg_lists(image)
    owners = path_owners(lists)
    pkg_apps = package_applications(read_dpkg_status(debugfs_cat(image, "/var/lib/dpkg/status")))
    all_paths = sorted(set().union(*[set(r["files"]) for r in results]))
    info = stat_paths(image, all_paths)

    n = len(sessions)
    session_out = []
    for s, r in zip(sessions, results):
        times = [x[0] for x in s["reads"]]
        session_out.append({
            "trace": s["trace"], "sha256_csv": s["sha256_csv"], "reads": len(s["reads"]),
            "bytes": sum(x[2] for x in s["reads"]),
            "first_read_s": min(times) if times else None, "last_read_s": max(times) if times else None,
            "files_read": len(r["files"]), "metadata_bytes": r["metadata_bytes"],
            "unattributed_bytes": r["unattributed_bytes"]})

    apps = {app: [] for app in [LINUX_BOOT] + list(APPLICATIONS)}
    other = []
    for path in all_paths:
        readers = [k for k in range(n) if path in results[k]["files"]]
        t_first = statistics.median(results[k]["files"][path][0] for k in readers)
        pkgs = sorted(owners.get(path, ()))
        app, rule = application_of(path, pkgs, pkg_apps)
        entry = {
            "path": path, "kind": info.get(path, {}).get("kind"), "size": info.get(path, {}).get("size"),
            "packages": pkgs if len(pkgs) <= 8 else pkgs[:8] + ["... %d in all" % len(pkgs)],
            "support": round(len(readers) / n, 4), "sessions": len(readers),
            "first_read_s": round(t_first, 6),
            "first_read_s_each": [round(results[k]["files"][path][0], 6) if k in readers else None for k in range(n)],
            "bytes_read": int(statistics.median(results[k]["files"][path][1] for k in readers)),
        }
        if app:
            entry["owner"] = rule
            entry["phase"] = "service-start" if t_first < a.boot_window_s else "steady"
            apps[app].append(entry)
        elif t_first < a.boot_window_s:
            entry["phase"] = "boot"
            apps[LINUX_BOOT].append(entry)
        else:
            other.append(entry)

    def summary(entries):
        full = [e for e in entries if e["support"] == 1.0]
        return {
            "files": len(entries), "files_in_every_session": len(full),
            "size_bytes_in_every_session": sum(e["size"] or 0 for e in full if e["kind"] == "regular"),
            "bytes_read_median_sum": sum(e["bytes_read"] for e in entries),
            "first_read_s_min": min((e["first_read_s"] for e in entries), default=None),
            "first_read_s_max": max((e["first_read_s"] for e in entries), default=None),
        }

    def key(e):
        return (e["first_read_s"], e["path"])

    report = {
        "tool": "bench/vm/derive-signatures.py",
        "command": " ".join(["bench/vm/derive-signatures.py"] + sys.argv[1:]),
        "image": {"name": a.name or os.path.basename(os.path.dirname(image)), "file": os.path.basename(image),
                  "size": os.path.getsize(image), "block_size": bs, "dpkg_packages": len(lists)},
        "attribution": source,
        "boot_window_s": a.boot_window_s,
        "time_base": "seconds since the session started (the affinityfs mount)",
        "rules": {app: {"packages": pat, "directories": dirs} for app, (pat, dirs) in APPLICATIONS.items()},
        "application_packages": {
            app: {"package": sorted(p for p, (x, r) in pkg_apps.items() if x == app and r == "package"),
                  "dependency": sorted(p for p, (x, r) in pkg_apps.items() if x == app and r == "dependency")}
            for app in APPLICATIONS},
        "sessions": session_out,
        "applications": {
            app: {"summary": summary(entries), "files": sorted(entries, key=key)} for app, entries in apps.items()},
        "other": {"summary": summary(other), "files": sorted(other, key=key)},
    }
    text = json_dump(report)
    if a.output == "-":
        sys.stdout.write(text)
        return
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output + ".tmp", "w") as f:
        f.write(text)
    os.replace(a.output + ".tmp", a.output)
    for app, v in list(report["applications"].items()) + [("other", report["other"])]:
        s = v["summary"]
        print("%-12s %5d files (%d in every session), first read %s..%s s" % (
            app, s["files"], s["files_in_every_session"], s["first_read_s_min"], s["first_read_s_max"]),
            file=sys.stderr)


def json_dump(report):
    """Indented JSON with one file entry per line (readable diffs)."""
    def dump(v, indent):
        pad = " " * indent
        if isinstance(v, dict) and not ("path" in v and "support" in v):
            if not v:
                return "{}"
            items = ["%s  %s: %s" % (pad, json.dumps(k), dump(x, indent + 2)) for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return "[\n" + ",\n".join(pad + "  " + dump(x, indent + 2) for x in v) + "\n" + pad + "]"
        return json.dumps(v, separators=(", ", ": "))
    return dump(report, 0) + "\n"


if __name__ == "__main__":
    main()
