#!/usr/bin/env python3
"""Application signatures derived from real traces (issue 6).

Input: a guest image (root.raw of bench/vm/build-image.sh, a raw ext4 file
system) and sessions recorded on it (bench/vm/record-traces.sh: CSV
`time_s,offset,length,op`, optionally zstd-compressed). Output: a JSON report
of which guest files each application reads, from which the signature files
(profile/signatures/*.json) are generated.

How a read becomes a file: every read is intersected with the image byte
ranges of the guest's files (their data blocks; a directory's directory
blocks). The map comes from `affinityctl inspect IMAGE --json` (the guest
inspector) or, without it, from e2fsprogs' debugfs (icheck/ncheck/stat of the
blocks the traces read). Reads of file-system structures (superblock, group
descriptors, bitmaps, inode tables, journal) are not attributed to any file:
an inode-table block holds 16 inodes; they are summed up under "unattributed".

How a file becomes an application's:
  * owned: its path is under one of the application's data or configuration
    directories (PostgreSQL's cluster, MariaDB's data directory: made by
    postinsts, so in no .list), or every dpkg package that lists it
    (/var/lib/dpkg/info/*.list, read from the image) belongs to the one
    application: by name (the package-name patterns in APPLICATIONS below), or
    as a dependency only it needs: the package is in the Depends/Pre-Depends
    closure (/var/lib/dpkg/status) of that application's packages and in no
    other application's closure nor in the closure of the system's own
    packages (Priority required or important, or outside all applications'
    closures): libicu72 is PostgreSQL's, but libssl3 is not when python3 is
    installed too, nor procps, which MariaDB pulls in; "owner" in the report says
    which rule: "directory", "package" or "dependency"). An owned file gets
    phase "service-start" when its median first read is within the boot
    window, "steady" after it.
  * not owned, median first read within the boot window: "linux-boot", phase
    "boot" (systemd, libc, udev rules, ... and also the shared libraries the
    services load: they belong to no single application).
  * not owned, later: the VM's own data; listed under "other", not carried.
Per file: "support" = share of the sessions that read it, "first_read_s" =
median (over the sessions that read it) of the time of its first read, in
seconds since the start of the session (the affinityfs mount; the guest's
first read is ~3.6 s later under TCG), "bytes_read" = median bytes of it read.
Per session: "metadata_bytes" = bytes read of file-system structures the map
names (the inspector: superblock, group descriptors, inode tables, ...;
debugfs: only the journal and other inodes without a path),
"unattributed_bytes" = bytes read of no file and no named structure (with
debugfs: inode tables, bitmaps, group descriptors, the superblock).
Signatures usually keep support >= 0.5 (profile/signature_learner.h); the
report lists every file so that the threshold stays the generator's choice.

Usage:
  bench/vm/derive-signatures.py --image /var/tmp/affinity-apps-a/root.raw \\
      [--affinityctl build/bin/affinityctl | --inspect-json MAP.json | --debugfs] \\
      [--boot-window-s 60] [--name apps-a] [-o bench/vm/derived/apps-a.json] \\
      bench/traces/apps-a/services-1.csv.zst bench/traces/apps-a/services-2.csv.zst ...
The default file map is `affinityctl inspect IMAGE --json` with --affinityctl
(default: build/bin/affinityctl of this checkout when it has the inspect
command), else debugfs. -o - (the default) writes to stdout. Python 3 stdlib;
zstd for .zst traces; debugfs (e2fsprogs) for --debugfs and for the dpkg
lists when the map has no data extents for them.
"""

import argparse
import bisect
import hashlib
import json
import os
import re
import shutil
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
KINDS = {0: "regular", 1: "directory", 2: "symlink", 3: "metadata"}


def die(msg):
    sys.exit("derive-signatures: " + msg)


def norm_path(p):
    p = re.sub(r"/+", "/", p)
    return p[:-1] if len(p) > 1 and p.endswith("/") else p


class FileMap:
    """Guest files and their image byte ranges: files[i] = dict(path, kind, size),
    extents = sorted, non-overlapping (offset, end, i)."""

    def __init__(self, source, block_size):
        self.source = source
        self.block_size = block_size
        self.files = []
        self.extents = []
        self._starts = None
        self.data = {}  # path -> [(offset, length)] of its data, when the map knows them

    def add(self, path, kind, size, extents):
        i = len(self.files)
        self.files.append({"path": path, "kind": kind, "size": size})
        for off, length in extents:
            if length > 0:
                self.extents.append((off, off + length, i))
        return i

    def seal(self):
        self.extents.sort()
        self._starts = [e[0] for e in self.extents]

    def overlaps(self, off, length):
        """(file index, overlapping bytes) for each extent a read [off, off+length) touches."""
        end = off + length
        k = max(bisect.bisect_right(self._starts, off) - 1, 0)
        while k < len(self.extents) and self.extents[k][0] < end:
            s, e, i = self.extents[k]
            if e > off:
                yield i, min(e, end) - max(s, off)
            k += 1


def load_inspect(obj, image_size):
    """The map of `affinityctl inspect --json` (profile/guest_files.h: files with
    path, kind, size, inode, extents)."""
    files = obj.get("files") if isinstance(obj, dict) else obj
    if not isinstance(files, list):
        die("the inspect JSON has no \"files\" list")
    fm = FileMap("affinityctl inspect --json", obj.get("block_size", 4096) if isinstance(obj, dict) else 4096)
    for f in files:
        kind = f.get("kind", "regular")
        kind = KINDS.get(kind, str(kind)) if isinstance(kind, int) else str(kind)
        path = f["path"]
        if path.startswith("<"):
            kind = "metadata"
        ext = []
        for e in f.get("extents", []):
            off, length = (e["offset"], e["length"]) if isinstance(e, dict) else (e[0], e[1])
            ext.append((int(off), int(length)))
        fm.add(path if kind == "metadata" else norm_path(path), kind, int(f.get("size", 0)), ext)
        if kind == "regular":
            fm.data[norm_path(path)] = ext
    fm.seal()
    return fm


def debugfs(image, commands):
    """Runs debugfs commands (a list of lines) on image, returns stdout."""
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as cmd:
        cmd.write("\n".join(commands) + "\n")
        cmd.flush()
        r = subprocess.run(["debugfs", "-f", cmd.name, image], capture_output=True, text=True)
    if r.returncode != 0:
        die("debugfs failed: " + r.stderr.strip()[-500:])
    return r.stdout


def load_debugfs(image, blocks_read):
    """A map of the files owning the blocks the traces read, from debugfs."""
    m = re.search(r"Block size:\s+(\d+)", debugfs(image, ["stats"]))
    if not m:
        die("debugfs stats: no block size (not an ext2/3/4 image?)")
    bs = int(m.group(1))
    blocks = sorted({b for off, length in blocks_read for b in range(off // bs, (off + length - 1) // bs + 1)})
    owner = {}
    batch = 400
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
            if ino not in paths or p < paths[ino]:
                paths[ino] = p
    info = {}
    out = debugfs(image, ["stat <%d>" % i for i in inodes])
    cur = None
    for line in out.splitlines():
        m = re.match(r"^Inode: (\d+)\s+Type: (\S+)", line)
        if m:
            cur = int(m.group(1))
            info[cur] = {"kind": m.group(2), "size": None}
            continue
        m = re.search(r"\bSize: (\d+)", line)
        if m and cur is not None and info[cur]["size"] is None:
            info[cur]["size"] = int(m.group(1))
    fm = FileMap("debugfs (icheck, ncheck, stat)", bs)
    index = {}
    runs = {}  # inode -> [(offset, length)], consecutive blocks merged
    for b in blocks:
        ino = owner.get(b)
        if ino is None:
            continue
        r = runs.setdefault(ino, [])
        if r and r[-1][0] + r[-1][1] == b * bs:
            r[-1] = (r[-1][0], r[-1][1] + bs)
        else:
            r.append((b * bs, bs))
    for ino in inodes:
        kind = info.get(ino, {}).get("kind", "unknown")
        kind = {"regular": "regular", "directory": "directory", "symlink": "symlink"}.get(kind, kind)
        path = paths.get(ino)
        if path is None:  # the journal, the resize inode, an orphan: no path
            path, kind = "<inode %d>" % ino, "metadata"
        index[ino] = fm.add(path, kind, info.get(ino, {}).get("size") or 0, runs.get(ino, []))
    fm.seal()
    return fm


def read_dpkg_lists(image, fm, tmp):
    """{package: [paths]} from the image's /var/lib/dpkg/info/*.list."""
    lists = {}
    names = [p for p in fm.data if p.startswith("/var/lib/dpkg/info/") and p.endswith(".list")]
    if names:  # the map has the data extents: read the bytes from the image
        by_path = {f["path"]: f for f in fm.files}
        with open(image, "rb") as img:
            for p in names:
                data = bytearray()
                for off, length in fm.data[p]:
                    img.seek(off)
                    data += img.read(length)
                size = by_path[p]["size"]
                lists[os.path.basename(p)[:-5]] = bytes(data[:size]).decode("utf-8", "replace").splitlines()
    else:
        if not shutil.which("debugfs"):
            die("need debugfs (e2fsprogs) to read the dpkg lists")
        debugfs(image, ["rdump /var/lib/dpkg/info " + tmp])
        d = os.path.join(tmp, "info")
        for n in sorted(os.listdir(d)):
            if n.endswith(".list"):
                with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
                    lists[n[:-5]] = f.read().splitlines()
    if not lists:
        die("no /var/lib/dpkg/info/*.list in the image")
    return {pkg.split(":")[0]: paths for pkg, paths in lists.items()}


def read_guest_file(image, fm, path):
    """The bytes of a regular guest file: from the map's extents, else debugfs cat."""
    if path in fm.data:
        size = next(f["size"] for f in fm.files if f["path"] == path)
        data = bytearray()
        with open(image, "rb") as img:
            for off, length in fm.data[path]:
                img.seek(off)
                data += img.read(length)
        return bytes(data[:size])
    r = subprocess.run(["debugfs", "-R", "cat " + path, image], capture_output=True)
    if r.returncode != 0 or not r.stdout:
        die("cannot read %s from the image (debugfs cat)" % path)
    return r.stdout


def read_dpkg_status(text):
    """{installed package: (priority, set of dependency names, set of provided names)}."""
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


def read_trace(path):
    if path.endswith(".zst"):
        r = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True)
        data = r.stdout
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
    return reads, hashlib.sha256(data).hexdigest()


def default_affinityctl():
    here = os.path.dirname(os.path.abspath(__file__))
    p = os.path.join(here, "..", "..", "build", "bin", "affinityctl")
    return p if os.access(p, os.X_OK) else None


def has_inspect(ctl):
    r = subprocess.run([ctl, "inspect", "--help"], capture_output=True, text=True)
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser(description="Application signatures derived from real traces (see the header).")
    ap.add_argument("--image", required=True, help="the guest image the traces read (root.raw)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--affinityctl", help="affinityctl with the inspect command (default: build/bin/affinityctl)")
    src.add_argument("--inspect-json", help="a saved `affinityctl inspect IMAGE --json` output")
    src.add_argument("--debugfs", action="store_true", help="map blocks to files with debugfs")
    ap.add_argument("--boot-window-s", type=float, default=60.0)
    ap.add_argument("--name", help="a name for the image in the report (default: its directory)")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("traces", nargs="+")
    a = ap.parse_args()

    image = os.path.abspath(a.image)
    image_size = os.path.getsize(image)
    sessions = []
    for t in a.traces:
        reads, digest = read_trace(t)
        sessions.append({"trace": os.path.basename(t), "sha256_csv": digest, "reads": reads})

    if a.inspect_json:
        with open(a.inspect_json) as f:
            fm = load_inspect(json.load(f), image_size)
    elif a.debugfs:
        fm = load_debugfs(image, [(off, length) for s in sessions for _, off, length in s["reads"]])
    else:
        ctl = a.affinityctl or default_affinityctl()
        if ctl and has_inspect(ctl):
            r = subprocess.run([ctl, "inspect", image, "--json"], capture_output=True, text=True)
            if r.returncode != 0:
                die("affinityctl inspect failed: " + r.stderr.strip()[-500:])
            fm = load_inspect(json.loads(r.stdout), image_size)
        else:
            if a.affinityctl:
                die("%s has no inspect command" % a.affinityctl)
            fm = load_debugfs(image, [(off, length) for s in sessions for _, off, length in s["reads"]])

    with tempfile.TemporaryDirectory(prefix="derive-signatures.") as tmp:
        lists = read_dpkg_lists(image, fm, tmp)
    owners = path_owners(lists)
    pkg_apps = package_applications(read_dpkg_status(
        read_guest_file(image, fm, "/var/lib/dpkg/status").decode("utf-8", "replace")))

    # Per session: each file's first read and bytes read; the bytes no file holds.
    n = len(sessions)
    first = [dict() for _ in range(n)]
    nbytes = [dict() for _ in range(n)]
    session_out = []
    for k, s in enumerate(sessions):
        unattributed = metadata = total = 0
        for t, off, length in s["reads"]:
            total += length
            covered = 0
            for i, b in fm.overlaps(off, length):
                covered += b
                if fm.files[i]["kind"] == "metadata":
                    metadata += b
                    continue
                if i not in first[k]:
                    first[k][i] = t
                nbytes[k][i] = nbytes[k].get(i, 0) + b
            unattributed += length - covered
        times = [r[0] for r in s["reads"]]
        session_out.append({
            "trace": s["trace"], "sha256_csv": s["sha256_csv"], "reads": len(s["reads"]), "bytes": total,
            "first_read_s": min(times) if times else None, "last_read_s": max(times) if times else None,
            "files_read": len(first[k]), "metadata_bytes": metadata, "unattributed_bytes": unattributed})

    apps = {app: [] for app in [LINUX_BOOT] + list(APPLICATIONS)}
    other = []
    for i in sorted(set().union(*[set(f) for f in first])):
        f = fm.files[i]
        readers = [k for k in range(n) if i in first[k]]
        t_first = statistics.median(first[k][i] for k in readers)
        pkgs = sorted(owners.get(f["path"], ()))
        app, rule = application_of(f["path"], pkgs, pkg_apps)
        entry = {
            "path": f["path"], "kind": f["kind"], "size": f["size"],
            "packages": pkgs if len(pkgs) <= 8 else pkgs[:8] + ["... %d in all" % len(pkgs)],
            "support": round(len(readers) / n, 4), "sessions": len(readers),
            "first_read_s": round(t_first, 6),
            "first_read_s_each": [round(first[k][i], 6) if i in first[k] else None for k in range(n)],
            "bytes_read": int(statistics.median(nbytes[k][i] for k in readers)),
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
            "size_bytes_in_every_session": sum(e["size"] for e in full if e["kind"] == "regular"),
            "bytes_read_median_sum": sum(e["bytes_read"] for e in entries),
            "first_read_s_min": min((e["first_read_s"] for e in entries), default=None),
            "first_read_s_max": max((e["first_read_s"] for e in entries), default=None),
        }

    key = lambda e: (e["first_read_s"], e["path"])
    report = {
        "tool": "bench/vm/derive-signatures.py",
        "command": " ".join(["bench/vm/derive-signatures.py"] + sys.argv[1:]),
        "image": {
            "name": a.name or os.path.basename(os.path.dirname(image)), "file": os.path.basename(image),
            "size": image_size, "block_size": fm.block_size, "file_map": fm.source,
            "dpkg_packages": len(lists),
        },
        "boot_window_s": a.boot_window_s,
        "time_base": "seconds since the session started (the affinityfs mount)",
        "rules": {app: {"packages": pat, "directories": dirs} for app, (pat, dirs) in APPLICATIONS.items()},
        "application_packages": {
            app: {"package": sorted(p for p, (a, r) in pkg_apps.items() if a == app and r == "package"),
                  "dependency": sorted(p for p, (a, r) in pkg_apps.items() if a == app and r == "dependency")}
            for app in APPLICATIONS},
        "sessions": session_out,
        "applications": {
            app: {"summary": summary(entries), "files": sorted(entries, key=key)} for app, entries in apps.items()
        },
        "other": {"summary": summary(other), "files": sorted(other, key=key)},
    }
    text = json_dump(report)
    if a.output == "-":
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        with open(a.output + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.output + ".tmp", a.output)
        for app, v in report["applications"].items():
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
