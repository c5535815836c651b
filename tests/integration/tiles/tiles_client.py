#!/usr/bin/python3
"""tiles_client.py - a C2SP tlog-tiles client written from the specs alone
(c2sp.org/tlog-tiles, c2sp.org/tlog-checkpoint, c2sp.org/signed-note,
RFC 6962 section 2.1), with no ehrgate code: it is what any mirror would do.

  tiles_client.py --url https://127.0.0.1:PORT --ca CA.pem --vkey VKEY
                  [--cert AUDITOR.pem --key AUDITOR.key] [--expect-size N]
                  [--index I ...]

Fetches /checkpoint and verifies the log's Ed25519 signature with the vkey,
rebuilds the checkpoint's root from hash tiles (full and partial, every
level the size needs), checks that each level-1 hash is the root of its
level-0 tile, builds RFC 6962 inclusion proofs from the tiles and verifies
them (RFC 9162 2.1.3.2) for the given indices, checks entry bundles hash to
the level-0 tiles (with the auditor's certificate) and are refused without
one, and that tiles past the checkpoint are 404 and bad paths 400.
Prints one "ok"/"FAILED" line per check and exits 1 if any failed.
"""
import argparse
import base64
import hashlib
import http.client
import ssl
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FAILS = []


def check(ok, what):
    print(("ok      " if ok else "FAILED  ") + what)
    if not ok:
        FAILS.append(what)
    return ok


class Conn:
    def __init__(self, url, ca, cert=None, key=None):
        host, port = url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
        self.c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)

    def get(self, path):
        self.c.request("GET", path)
        r = self.c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body


# ---- signed note / checkpoint (c2sp.org/signed-note, tlog-checkpoint)

def parse_vkey(vkey):
    name, keyid, b = vkey.split("+", 2)  # base64 may hold "+" too
    raw = base64.b64decode(b)
    assert raw[0] == 0x01 and len(raw) == 33, "vkey must be an Ed25519 (0x01) key"
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == keyid
    return name, bytes.fromhex(keyid), raw[1:]


def verify_checkpoint(note, vkey):
    name, keyid, pub = parse_vkey(vkey)
    text, sigs = note.split(b"\n\n", 1)
    text += b"\n"
    lines = text.decode().split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    good = False
    for line in sigs.decode().split("\n"):
        if not line:
            continue
        assert line.startswith("\u2014 "), "signature line must start with an em dash"
        n, s = line[2:].split(" ")
        s = base64.b64decode(s)
        if n == name and s[:4] == keyid:
            Ed25519PublicKey.from_public_bytes(pub).verify(s[4:], text)  # raises if bad
            good = True
    return origin, size, root, good


# ---- tiles (c2sp.org/tlog-tiles)

def tile_path(level, n, width):
    s = "%03d" % (n % 1000)
    n //= 1000
    while n > 0:
        s = "x%03d/%s" % (n % 1000, s)
        n //= 1000
    return "/tile/%s/%s%s" % (level, s, "" if width == 256 else ".p/%d" % width)


def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def mth_list(hashes):
    """MTH of a list of subtree roots of equal size (RFC 6962 2.1)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node(mth_list(hashes[:k]), mth_list(hashes[k:]))


class Tiles:
    def __init__(self, conn, size):
        self.conn, self.size, self.cache, self.fetched = conn, size, {}, 0

    def tile(self, level, n):
        """Tile n of level, full, or the partial one the tree size needs."""
        full = (self.size >> (8 * (level + 1)))
        width = 256 if n < full else (self.size >> (8 * level)) & 255
        key = (level, n, width)
        if key not in self.cache:
            st, hd, body = self.conn.get(tile_path(level, n, width))
            if st != 200 or len(body) != 32 * width:
                raise RuntimeError("tile %s: status %d, %d bytes" % (tile_path(level, n, width), st, len(body)))
            self.cache[key] = [body[i:i + 32] for i in range(0, len(body), 32)]
            self.fetched += 1
        return self.cache[key]

    def subtree(self, start, height):
        """MTH(D[start : start + 2^height]), start aligned: from the tile
        at level height // 8, hashing 2^(height % 8) of its hashes."""
        level, r = height // 8, height % 8
        idx = start >> (8 * level)
        hashes = self.tile(level, idx // 256)
        off = idx % 256
        return mth_list(hashes[off:off + (1 << r)])

    def mth(self, start, n):
        """MTH(D[start : start + n]) for a range RFC 6962's recursion reaches."""
        if n & (n - 1) == 0 and start % n == 0:
            return self.subtree(start, n.bit_length() - 1)
        k = 1
        while k * 2 < n:
            k *= 2
        return node(self.mth(start, k), self.mth(start + k, n - k))

    def path(self, m, start, n):
        """RFC 6962 2.1.1 PATH(m, D[start : start + n])."""
        if n == 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return self.path(m, start, k) + [self.mth(start + k, n - k)]
        return self.path(m - k, start + k, n - k) + [self.mth(start, k)]


def verify_inclusion(lh, index, size, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, lh
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def parse_bundle(body):
    out, i = [], 0
    while i < len(body):
        n = int.from_bytes(body[i:i + 2], "big")
        out.append(body[i + 2:i + 2 + n])
        i += 2 + n
    if i != len(body):
        raise RuntimeError("bundle has trailing bytes")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--vkey", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--expect-size", type=int)
    ap.add_argument("--index", type=int, action="append", default=[])
    a = ap.parse_args()
    pub = Conn(a.url, a.ca)

    st, hd, note = pub.get("/checkpoint")
    check(st == 200 and hd.get("content-type") == "text/plain; charset=utf-8", "checkpoint is text/plain; charset=utf-8")
    check("no-cache" in hd.get("cache-control", "") or "max-age" in hd.get("cache-control", ""),
          "checkpoint is not cached for long: " + hd.get("cache-control", "(none)"))
    origin, size, root, good = verify_checkpoint(note, a.vkey)
    check(good, "checkpoint signed by the log key (%s, size %d)" % (origin, size))
    if a.expect_size is not None:
        check(size >= a.expect_size, "checkpoint size %d >= %d" % (size, a.expect_size))

    t = Tiles(pub, size)
    check(t.mth(0, size) == root, "root rebuilt from %d tiles equals the checkpoint's" % t.fetched)
    # and from the leaves alone: every level-0 tile, full and partial
    leaves = []
    for n in range((size + 255) // 256):
        leaves += t.tile(0, n)
    check(len(leaves) == size and mth_list(leaves) == root,
          "root rebuilt from all %d level-0 tiles equals the checkpoint's" % ((size + 255) // 256))

    # every level-1 hash is the MTH of the full level-0 tile below it
    if size >= 65536:
        l1 = t.tile(1, 0)
        for j in (0, 1, 255):
            check(mth_list(t.tile(0, j)) == l1[j], "level-1 hash %d is the root of level-0 tile %d" % (j, j))

    for i in a.index + [0, size - 1]:
        if 0 <= i < size:
            lh = t.tile(0, i // 256)[i % 256]
            p = t.path(i, 0, size)
            check(verify_inclusion(lh, i, size, p, root), "inclusion of %d in %d (%d hashes)" % (i, size, len(p)))
            if p:
                bad = list(p)
                bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
                check(not verify_inclusion(lh, i, size, bad, root), "a flipped proof for %d is refused" % i)

    # full tiles are immutable; partial ones are not cached for long
    st, hd, _ = pub.get(tile_path(0, 0, 256) if size >= 256 else tile_path(0, 0, size % 256))
    cc = hd.get("cache-control", "")
    check(st == 200 and hd.get("content-type") == "application/octet-stream", "tiles are application/octet-stream")
    if size >= 256:
        check("immutable" in cc and "max-age=31536000" in cc, "a full tile is immutable: " + cc)
    if size % 256:
        st, hd, _ = pub.get(tile_path(0, size // 256, size % 256))
        cc = hd.get("cache-control", "")
        check(st == 200 and "immutable" not in cc, "a partial tile is not immutable: " + cc)

    # past the published tree: 404
    beyond = [tile_path(0, size // 256 + 1, 256), tile_path(0, size // 256, min(255, size % 256 + 1)),
              tile_path(3, 0, 1)]
    if size % 256 == 255:
        beyond.pop(1)
    for path in beyond:
        st, _, _ = pub.get(path)
        check(st == 404, "%s past size %d is 404 (got %d)" % (path, size, st))
    # malformed: 400
    for path in ["/tile/0/1", "/tile/0/0000", "/tile/01/000", "/tile/64/000", "/tile/0/x000/001",
                 "/tile/0/000.p/0", "/tile/0/000.p/256", "/tile/0/000.p/07", "/tile/0/x1/000",
                 "/tile/0/001/000", "/tile/a/000", "/tile/0/000.p/1/2"]:
        st, hd, body = pub.get(path)
        check(st == 400 and hd.get("content-type", "").startswith("application/json"), "%s is 400 (got %d)" % (path, st))

    # entry bundles: refused without an auditor certificate
    first = "/tile/entries/000" + ("" if size >= 256 else ".p/%d" % size)
    st, _, _ = pub.get(first)
    check(st in (401, 403), "an entry bundle without an auditor certificate is refused (%d)" % st)
    if a.cert:
        aud = Conn(a.url, a.ca, a.cert, a.key)
        bundles = [0] + ([size // 256] if size % 256 and size >= 256 else [])
        for n in bundles:
            w = 256 if (n + 1) * 256 <= size else size % 256
            st, hd, body = aud.get("/tile/entries/" + tile_path(0, n, w)[len("/tile/0/"):])
            ok = st == 200 and hd.get("content-type") == "application/octet-stream"
            entries = parse_bundle(body) if ok else []
            check(ok and len(entries) == w, "entry bundle %d has %d entries (%d)" % (n, w, st))
            check([leaf(e) for e in entries] == t.tile(0, n), "entry bundle %d hashes to level-0 tile %d" % (n, n))
        st, _, _ = aud.get("/tile/entries/" + tile_path(0, size // 256 + 1, 256)[len("/tile/0/"):])
        check(st == 404, "an entry bundle past size %d is 404 (got %d)" % (size, st))
        st, _, _ = aud.get("/tile/entries/00a")
        check(st == 400, "a malformed entry bundle path is 400 (got %d)" % st)
    print("%d checks failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
