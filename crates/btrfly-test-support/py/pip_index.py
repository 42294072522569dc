"""Builds the small package index that tests/pip.rs serves with nginx.

usage: python3 pip_index.py ROOT FILES_BASE_URL [--tamper FILENAME]

Everything is generated here, deterministically (fixed zip and tar times):

  demo-app 1.0 (wheel)      requires demo-lib>=1.0 and Tiny_Util.Extra
  demo-lib 1.0, 1.1 (wheels) 1.1 requires demo-sdist, and holds 2 MiB of data
  Tiny_Util.Extra 0.1 (wheel; its page links it relatively, on the index host)
  demo-sdist 2.0 (sdist only; pyproject.toml names the tinybuild backend)
  tinybuild 0.1 (wheel: a tiny PEP 517 backend; pip fetches it for the
                 isolated build of demo-sdist)

Layout under ROOT (one nginx serves it for the index and the file host):

  packages/<h0h1>/<h2h3>/<file>           wheels and the sdist
  packages/<h0h1>/<h2h3>/<wheel>.metadata PEP 658 metadata files
  simple/…/index.html                     PEP 503 HTML pages only
  json/simple/…/index.html, index.json    both forms (nginx picks by Accept)

File links are absolute to FILES_BASE_URL, except Tiny_Util.Extra's, which is
relative to the page. With --tamper, that wheel gets a zip comment after
the pages announced its sha256: still a valid wheel, but other bytes.

Prints a JSON object {filename: sha256} of what the pages announce.
"""

import base64
import gzip
import hashlib
import html
import io
import json
import os
import random
import re
import sys
import tarfile
import zipfile

ZIP_TIME = (1980, 1, 1, 0, 0, 0)

TINYBUILD = r'''"""tinybuild: a tiny PEP 517 build backend, made for btrfly's tests.

Builds a pure-Python wheel from an sdist's PKG-INFO and its package
directory (the project name with - and . as _), deterministically.
"""
import base64
import hashlib
import os
import re
import zipfile


def _metadata():
    with open("PKG-INFO", encoding="utf-8") as f:
        text = f.read()
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return text, fields["Name"], fields["Version"]


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    text, name, version = _metadata()
    dist = re.sub(r"[-_.]+", "_", name).lower()
    info = f"{dist}-{version}.dist-info"
    entries = {}
    for root, dirs, files in os.walk(dist):
        dirs.sort()
        for fn in sorted(files):
            if fn.endswith(".pyc"):
                continue
            path = os.path.join(root, fn)
            with open(path, "rb") as f:
                entries[path.replace(os.sep, "/")] = f.read()
    entries[info + "/METADATA"] = text.encode()
    entries[info + "/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tinybuild 0.1\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in entries.items())
    entries[info + "/RECORD"] = (record + info + "/RECORD,,\n").encode()
    wheel = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
        for p, d in entries.items():
            zi = zipfile.ZipInfo(p, (1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, d, zipfile.ZIP_DEFLATED)
    return wheel
'''


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def metadata(name, version, requires):
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    lines.append("Requires-Python: >=3.8")
    return ("\n".join(lines) + "\n").encode()


def wheel(name, version, files, requires=()):
    dist = dist_name(name)
    info = f"{dist}-{version}.dist-info"
    meta = metadata(name, version, requires)
    entries = dict(files)
    entries[info + "/METADATA"] = meta
    entries[info + "/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: btrfly-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in entries.items())
    entries[info + "/RECORD"] = (record + info + "/RECORD,,\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p, d in entries.items():
            zi = zipfile.ZipInfo(p, ZIP_TIME)
            zi.external_attr = 0o644 << 16
            z.writestr(zi, d, zipfile.ZIP_DEFLATED)
    return f"{dist}-{version}-py3-none-any.whl", buf.getvalue(), meta


def sdist(name, version, files, build_requires, backend):
    dist = dist_name(name)
    top = f"{dist}-{version}"
    entries = dict(files)
    entries["PKG-INFO"] = metadata(name, version, ())
    entries["pyproject.toml"] = (
        "[build-system]\n"
        f"requires = {json.dumps(build_requires)}\n"
        f'build-backend = "{backend}"\n'
    ).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for p, d in sorted(entries.items()):
            ti = tarfile.TarInfo(f"{top}/{p}")
            ti.size, ti.mtime, ti.mode = len(d), 0, 0o644
            t.addfile(ti, io.BytesIO(d))
    return f"{top}.tar.gz", gzip.compress(raw.getvalue(), mtime=0)


def module(text):
    return text.encode()


def build(root, files_base, tamper):
    projects = {}  # display name -> list of (filename, bytes, metadata or None)

    def add(name, filename, data, meta=None):
        projects.setdefault(name, []).append((filename, data, meta))

    for name, version, files, requires in [
        ("demo-app", "1.0", {"demo_app/__init__.py": module('VERSION = "1.0"\n')},
         ["demo-lib>=1.0", "Tiny_Util.Extra"]),
        ("demo-lib", "1.0", {"demo_lib/__init__.py": module('VERSION = "1.0"\n')}, []),
        ("demo-lib", "1.1", {"demo_lib/__init__.py": module('VERSION = "1.1"\n'),
                             # big enough to stream in many chunks
                             "demo_lib/data.bin": random.Random(11).randbytes(2 << 20)},
         ["demo-sdist"]),
        ("Tiny_Util.Extra", "0.1",
         {"tiny_util_extra/__init__.py": module('def helper():\n    return 42\n')}, []),
        ("tinybuild", "0.1", {"tinybuild.py": module(TINYBUILD)}, []),
    ]:
        filename, data, meta = wheel(name, version, files, requires)
        add(name, filename, data, meta)
    filename, data = sdist(
        "demo-sdist", "2.0",
        {"demo_sdist/__init__.py": module('BUILT_BY = "tinybuild"\n'),
         "demo_sdist/data.txt": module("from an sdist\n")},
        ["tinybuild>=0.1"], "tinybuild")
    add("demo-sdist", filename, data)

    announced = {}
    pages = {}  # project -> list of dicts describing each file
    for name, files in projects.items():
        for filename, data, meta in files:
            digest = sha256(data)
            announced[filename] = digest
            rel = f"packages/{digest[:2]}/{digest[2:4]}/{filename}"
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            if meta is not None:
                with open(path + ".metadata", "wb") as f:
                    f.write(meta)
            if name == "Tiny_Util.Extra":
                url = None  # relative, see below
            elif filename.endswith(".tar.gz"):
                # mirrors append queries; the key must not care
                url = f"{files_base}/{rel}?source=mirror"
            else:
                url = f"{files_base}/{rel}"
            pages.setdefault(name, []).append({
                "filename": filename, "url": url, "rel": rel, "sha256": digest,
                "metadata": sha256(meta) if meta is not None else None,
            })
            if filename == tamper:
                # still a valid archive, but not the bytes the page announces
                with zipfile.ZipFile(path, "a") as z:
                    z.comment = b"tampered with after publishing"

    def write(path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    for prefix, depth in [("simple", 2), ("json/simple", 3)]:
        names = sorted(projects, key=norm)
        write(os.path.join(root, prefix, "index.html"),
              "<!DOCTYPE html>\n<html><body>\n" + "".join(
                  f'<a href="{norm(n)}/">{html.escape(n)}</a>\n' for n in names) + "</body></html>\n")
        if prefix.startswith("json"):
            write(os.path.join(root, prefix, "index.json"), json.dumps({
                "meta": {"api-version": "1.1"},
                "projects": [{"name": n} for n in names]}))
        for name, files in pages.items():
            d = os.path.join(root, prefix, norm(name))
            links = []
            entries = []
            for f in files:
                url = f["url"] or ("../" * depth + f["rel"])
                meta_attrs = ""
                if f["metadata"]:
                    m = f"sha256={f['metadata']}"
                    meta_attrs = f' data-dist-info-metadata="{m}" data-core-metadata="{m}"'
                links.append(
                    f'<a href="{html.escape(url)}#sha256={f["sha256"]}" '
                    f'data-requires-python="&gt;=3.8"{meta_attrs}>{f["filename"]}</a><br/>\n')
                entry = {"filename": f["filename"], "url": url,
                         "hashes": {"sha256": f["sha256"]}, "requires-python": ">=3.8"}
                if f["metadata"]:
                    entry["core-metadata"] = {"sha256": f["metadata"]}
                    entry["dist-info-metadata"] = {"sha256": f["metadata"]}
                entries.append(entry)
            write(os.path.join(d, "index.html"),
                  "<!DOCTYPE html>\n<html><head>"
                  '<meta name="pypi:repository-version" content="1.1">'
                  f"<title>Links for {html.escape(name)}</title></head>\n<body>\n"
                  f"<h1>Links for {html.escape(name)}</h1>\n" + "".join(links) + "</body></html>\n")
            if prefix.startswith("json"):
                write(os.path.join(d, "index.json"), json.dumps({
                    "meta": {"api-version": "1.1"}, "name": norm(name), "files": entries}))
    return announced


def main():
    args = sys.argv[1:]
    tamper = None
    if "--tamper" in args:
        i = args.index("--tamper")
        tamper = args[i + 1]
        del args[i:i + 2]
    root, files_base = args
    print(json.dumps(build(root, files_base.rstrip("/"), tamper), sort_keys=True))


if __name__ == "__main__":
    main()
