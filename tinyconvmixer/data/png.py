"""A strict check of a PNG file: every chunk whole, and exactly the pixel data its header asks for.

Pillow checks the chunks' CRCs only in `verify()`, and `load()` accepts
compressed data that inflates to fewer rows than the image has (the rest is
left black) or to more. `check(data)` refuses all of these, with a short reason
(ValueError; the caller names the file):

    chunks      the signature, then chunks whose lengths stay inside the file and
                whose CRCs match, IHDR first, the IDAT chunks one after another,
                IEND last
    pixel data  the IDAT chunks together are one whole zlib stream that inflates to
                exactly the bytes the header's size, colour type, bit depth and
                interlacing ask for, each row starting with a filter type 0..4
"""

import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}        # colour type -> samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def check(data):
    """Raise ValueError unless `data` is a whole PNG file (see the module docstring)."""
    if data[:8] != SIGNATURE:
        raise ValueError("no PNG signature")
    pos, n, kinds, idat = 8, len(data), [], []
    while True:
        if pos + 12 > n:
            raise ValueError("the file ends before its IEND chunk")
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if pos + 12 + length > n:
            raise ValueError(f"chunk {kind!r} runs past the end of the file")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big"):
            raise ValueError(f"chunk {kind!r} fails its CRC check (damaged)")
        pos += 12 + length
        if kind == b"IDAT" and b"IDAT" in kinds and kinds[-1] != b"IDAT":
            raise ValueError("IDAT chunks that are not one after another")
        kinds.append(kind)
        if kind == b"IDAT":
            idat.append(body)
        if kind == b"IEND":
            break
    if kinds[0] != b"IHDR" or not idat:
        raise ValueError("no IHDR chunk first, or no IDAT chunk")
    header = data[16:29]
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    if colour not in CHANNELS or depth not in (1, 2, 4, 8, 16) or interlace > 1 or not width or not height:
        raise ValueError("a malformed IHDR chunk")
    bits = CHANNELS[colour] * depth
    passes = [(width, height)] if not interlace else [
        (-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in ADAM7 if width > x and height > y]
    rows = [(-(-w * bits // 8), h) for w, h in passes]
    expected = sum((1 + row) * h for row, h in rows)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), expected + 1)
    except zlib.error as exc:
        raise ValueError(f"pixel data that does not inflate ({exc})") from None
    if len(raw) != expected or not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise ValueError(f"pixel data of {len(raw):,}{'+' if len(raw) > expected else ''} bytes where the "
                         f"header asks for {expected:,} (or a cut compressed stream)")
    at = 0
    for row, h in rows:
        for _ in range(h):
            if raw[at] > 4:
                raise ValueError(f"a row with filter type {raw[at]} (0..4 exist)")
            at += 1 + row
