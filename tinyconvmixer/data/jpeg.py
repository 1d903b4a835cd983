"""A strict check of a JPEG file's compressed data: every bit decoded, none missing, none left over.

Why: Pillow (libjpeg underneath) decodes a JPEG whose header is valid and whose
compressed data is garbage without a word. libjpeg only *warns* about bad
Huffman codes, data that ends too early ("premature end of data segment") or
bytes left over ("extraneous bytes before marker"), filling in what it could
not read, and Pillow drops those warnings. A data set with such a file would
train on noise. So `check(data)` walks the file itself:

    markers     SOI first, every segment's length inside the file, one frame
                (SOF0/SOF1, baseline 8-bit Huffman) before the scan, tables defined
                before use, EOI last (nothing but padding after it)
    scan data   no marker inside it but restart markers RST0..7 in their order;
                every 8x8 block decoded with the file's own Huffman tables: DC and
                AC codes that exist, coefficient indices within 0..63, exactly the
                blocks the frame's size and sampling ask for, and then at most 7
                padding bits left in each restart interval

Other JPEG kinds (progressive, arithmetic-coded, 12-bit, lossless) are not
decoded here (`check` returns without a verdict on their scan data); CIFAR-10's
JPEG copies and every encoder's default are baseline. A problem raises
ValueError with a short reason; the caller names the file.

The decoding is table driven (one dict look-up per Huffman code of up to 8 bits;
libjpeg does the same with its 'lookahead' tables): about 0.2 ms for a CIFAR-10
image, so a first decode of the 60,000-image JPEG copy pays some seconds for it.
"""

SOF_BASELINE = (0xC0, 0xC1)                      # baseline and extended sequential, Huffman
SOF_OTHER = (0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
RST = range(0xD0, 0xD8)
PAD = 5                                          # zero bytes after a segment: windows past its end exist
_tables = {}                                    # the bytes of a Huffman table -> its decoding tables


def check(data):
    """Raise ValueError unless `data` is a whole JPEG file (see the module docstring)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("no start-of-image marker")
    pos, n = 2, len(data)
    huffman, frame, restart = {}, None, 0
    scanned = False
    while True:
        while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1                             # fill bytes before a marker
        if pos + 2 > n or data[pos] != 0xFF:
            raise ValueError(f"no marker where one must be, at byte {pos} of {n} (image data left over, "
                             "or the file is cut short)")
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD9:                       # EOI (what follows it is not image data: not checked)
            if not scanned:
                raise ValueError("the file ends before its image data")
            return
        if marker in RST or marker in (0x01, 0xD8):
            raise ValueError(f"marker 0xFF{marker:02X} out of place at byte {pos - 2}")
        if pos + 2 > n:
            raise ValueError("the file ends inside a segment header")
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > n:
            raise ValueError(f"a segment (marker 0xFF{marker:02X}) runs past the end of the file")
        body = data[pos + 2:pos + length]
        pos += length
        if marker == 0xC4:
            _read_huffman(body, huffman)
        elif marker in SOF_BASELINE:
            if frame is not None:
                raise ValueError("two frame headers")
            frame = _read_frame(body)
        elif marker in SOF_OTHER:
            return                               # not a kind decoded here (see the docstring)
        elif marker == 0xDD:
            if len(body) != 2:
                raise ValueError("a restart-interval segment of the wrong length")
            restart = int.from_bytes(body, "big")
        elif marker == 0xDA:
            if frame is None:
                raise ValueError("image data before the frame header")
            pos = _scan(data, pos, body, frame, huffman, restart)
            scanned = True


def _read_frame(body):
    if len(body) < 6 or body[0] != 8:
        raise ValueError("a frame header that is not 8-bit")
    height, width, count = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big"), body[5]
    if len(body) != 6 + 3 * count or count not in (1, 3, 4) or not height or not width:
        raise ValueError("a malformed frame header")
    components = {}
    for i in range(count):
        cid, sampling = body[6 + 3 * i], body[7 + 3 * i]
        h, v = sampling >> 4, sampling & 15
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise ValueError("a malformed frame header (sampling factors)")
        components[cid] = (h, v)
    return height, width, components


def _read_huffman(body, huffman):
    i = 0
    while i < len(body):
        if i + 17 > len(body):
            raise ValueError("a Huffman table cut short")
        kind, ident = body[i] >> 4, body[i] & 15
        counts = body[i + 1:i + 17]
        total = sum(counts)
        if kind > 1 or ident > 3 or i + 17 + total > len(body) or total > 256:
            raise ValueError("a malformed Huffman table")
        key = bytes(body[i:i + 17 + total])
        if key not in _tables:
            _tables[key] = _build(counts, body[i + 17:i + 17 + total], kind)
        huffman[kind, ident] = _tables[key]
        i += 17 + total


def _build(counts, symbols, kind):
    """(short, longer) look-up tables of one Huffman table: short[w] for each 8-bit window w that
    starts with a code of up to 8 bits, longer[length, code] for the others. A DC entry is the bits to skip (code and
    value); an AC entry is (bits to skip, coefficients covered; 0 for the end of the block). A
    symbol no baseline encoder writes (a DC size over 11, an AC size over 10) raises ValueError
    when it is met: its entry is a 'refuse' marker."""
    table, longer, code, k = [None] * 256, {}, 0, 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            if code >= 1 << length:
                raise ValueError("a Huffman table with more codes than its lengths allow")
            entry = _entry(symbols[k], length, kind)
            if length <= 8:
                first = code << (8 - length)                  # every 8-bit window that starts with it
                table[first:first + (1 << (8 - length))] = [entry] * (1 << (8 - length))
            else:
                longer[length, code] = entry
            code, k = code + 1, k + 1
        code <<= 1
    return table, longer


def _entry(symbol, length, kind):
    if kind == 0:                                # DC: the size of the difference that follows
        return length + symbol if symbol <= 11 else _Refuse("a DC value out of range")
    run, size = symbol >> 4, symbol & 15
    if size == 0:
        return (length, 16) if run == 15 else (length, 0)    # sixteen zeros, or the end of the block
    return (length + size, run + 1) if size <= 10 else _Refuse("an AC coefficient out of range")


class _Refuse:
    """A table entry for a symbol no baseline encoder writes: using it raises ValueError."""

    def __init__(self, reason):
        self.reason = reason

    def __radd__(self, other):
        raise ValueError(self.reason)

    def __iter__(self):
        raise ValueError(self.reason)


def _scan(data, pos, header, frame, huffman, restart):
    """Decode the scan starting at `pos`; returns the position of the marker after it."""
    height, width, components = frame
    if not header or len(header) != 4 + 2 * header[0]:
        raise ValueError("a malformed scan header")
    ns = header[0]
    order = []
    for i in range(ns):
        cid, tables = header[1 + 2 * i], header[2 + 2 * i]
        if cid not in components:
            raise ValueError("a scan of a component the frame does not have")
        dc, ac = huffman.get((0, tables >> 4)), huffman.get((1, tables & 15))
        if dc is None or ac is None:
            raise ValueError("a scan that uses a Huffman table never defined")
        order.append((components[cid], dc, ac))
    ss, se, approx = header[1 + 2 * ns], header[2 + 2 * ns], header[3 + 2 * ns]
    if (ss, se, approx) != (0, 63, 0):
        raise ValueError("a baseline scan that is not a whole sequential scan")
    hmax = max(h for h, _ in components.values())
    vmax = max(v for _, v in components.values())
    if ns == 1:                                  # one component: its own blocks, no interleaving
        (h, v), dc, ac = order[0]
        units = _ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8)
        per_unit = [(dc, ac)]
    else:
        units = _ceil(width, 8 * hmax) * _ceil(height, 8 * vmax)
        per_unit = [(dc, ac) for (h, v), dc, ac in order for _ in range(h * v)]
    end = pos
    done, expected_rst = 0, 0
    while done < units:
        segment_end = _next_marker(data, end)
        windows, n_bits = _bits(data[end:segment_end])
        count = min(restart or units, units - done)
        try:
            p = _blocks(windows, n_bits, count, per_unit)
        except IndexError:                       # ran past the padding: far too little data
            raise ValueError("image data that ends before the image does") from None
        if n_bits - p >= 8:
            raise ValueError(f"{(n_bits - p) // 8} bytes of image data left over")
        done += count
        end = segment_end
        if done < units:                         # a restart marker, in its turn
            if data[end + 1] != 0xD0 + expected_rst:
                raise ValueError(f"restart marker 0xFF{data[end + 1]:02X} out of order or missing")
            expected_rst = (expected_rst + 1) % 8
            end += 2
    return end


def _ceil(a, b):
    return -(-a // b)


def _next_marker(data, pos):
    """The position of the first marker (0xFF not followed by 0x00) at or after `pos`."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise ValueError("the image data runs to the end of the file (no end-of-image marker)")
        if data[pos + 1] != 0x00:
            if data[pos + 1] == 0xFF:            # fill bytes before the marker
                pos += 1
                continue
            if data[pos + 1] not in RST and data[pos + 1] != 0xD9:
                raise ValueError(f"marker 0xFF{data[pos + 1]:02X} inside the image data (byte {pos})")
            return pos
        pos += 2


def _bits(segment):
    """(windows, number of bits) of a segment's entropy-coded bytes (0xFF 0x00 unstuffed):
    windows[p] is the 8 bits from bit p on, as an int (zeros past the end), for table look-ups.
    Built with 8 shifts of one big integer: byte j of the copy shifted by s is windows[8j + s]."""
    raw = bytes(segment).replace(b"\xff\x00", b"\xff") + bytes(PAD)
    size, whole = len(raw), int.from_bytes(raw, "big")
    mask = (1 << 8 * size) - 1
    windows = bytearray(8 * size)
    for shift in range(8):
        windows[shift::8] = ((whole << shift) & mask).to_bytes(size, "big")
    return windows, 8 * (size - PAD)


def _blocks(windows, end, count, per_unit):
    """Decode `count` units of blocks (windows: see _bits); returns the bit where they end. Only
    where each code ends matters, not the values: the tables hold (bits to skip, coefficients
    covered). One loop, names kept local: the time goes here."""
    p = 0
    for _ in range(count):
        for (dc, dc_long), (ac, ac_long) in per_unit:
            skip = dc[windows[p]]
            p += skip if skip is not None else _long_code(windows, p, dc_long)
            k = 1
            while k < 64:
                hit = ac[windows[p]]
                skip, covered = hit if hit is not None else _long_code(windows, p, ac_long)
                p += skip
                if not covered:                  # end of block
                    break
                k += covered
            if k > 64:
                raise ValueError("an AC coefficient out of range")
            if p > end:
                raise ValueError("image data that ends before the image does")
    return p


def _long_code(windows, p, longer):
    """The entry of a Huffman code longer than 8 bits at bit p."""
    both = windows[p] << 8 | windows[p + 8]
    for length in range(9, 17):
        hit = longer.get((length, both >> (16 - length)))
        if hit is not None:
            return hit
    raise ValueError("image data that is not a valid Huffman code")
