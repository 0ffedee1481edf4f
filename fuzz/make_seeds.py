#!/usr/bin/env python3
"""Writes the binary seed inputs of fuzz_qstream and fuzz_tds_wire into
fuzz/corpus/ (the text seeds of the other targets are kept as written).
Run it again after changing an input layout; the output is deterministic.
Layouts: the header comments of fuzz/fuzz_qstream.c and fuzz/fuzz_tds_wire.c.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- fuzz_qstream --------------------------------------------------------------
# 4 option bytes: [flags: 1 arrays, 2 operation, 4 steal] [max_rows index]
# [fill size index] [consume size index]; then the driver script:
# n_results, fail byte (>= 0xF0 fails), rows_affected (8 bytes, big-endian),
# per result: n_cols, per column (len, name bytes, len, type bytes), n_rows,
# fail byte, then n_rows * n_cols values (tag byte + payload).

def lv(b):
    return bytes([len(b)]) + b


def v_null():
    return b"\x00"


def v_int(i):
    return b"\x01" + struct.pack(">q", i)


def v_special_int(k):
    return b"\x02" + bytes([k])


def v_float(f):
    # fuzz_u64 reads big-endian; the bits are then the double's
    return b"\x03" + struct.pack(">d", f)


def v_special_float(k):
    return b"\x04" + bytes([k])


def v_bool(b):
    return b"\x05" + bytes([1 if b else 0])


def v_text(s):
    return b"\x06" + lv(s)


def v_bin(b):
    return b"\x07" + lv(b)


def result(cols, rows, fail=0):
    out = bytes([len(cols)])
    for name, typ in cols:
        out += lv(name) + lv(typ)
    out += bytes([len(rows), fail])
    for row in rows:
        out += b"".join(row)
    return out


def qstream(flags, max_rows_idx, fill_idx, take_idx, results, fail=0, affected=0):
    head = bytes([flags, max_rows_idx, fill_idx, take_idx])
    script = bytes([len(results), fail]) + struct.pack(">q", affected) + b"".join(results)
    return head + script


users = result([(b"id", b"int"), (b"name", b"nvarchar")],
               [[v_int(1), v_text(b"Ada")], [v_int(2), v_text(b"Grace")], [v_int(3), v_text(b"Alan")]])
write("fuzz_qstream", "users-objects", qstream(0, 5, 4, 4, [users]))
write("fuzz_qstream", "users-arrays-op", qstream(3, 5, 0, 1, [users]))
write("fuzz_qstream", "truncated", qstream(0, 1, 2, 2, [users]))  # max_rows 2 of 3
types = result([(b"i", b"bigint"), (b"big", b"bigint"), (b"f", b"float"), (b"nan", b"float"),
                (b"b", b"bit"), (b"t", b"nvarchar"), (b"bin", b"varbinary"), (b"n", b"int")],
               [[v_int(2**53), v_special_int(5), v_float(0.1), v_special_float(0), v_bool(True),
                 v_text("Zoë ✓ 𝄞".encode()), v_bin(b"\x00\xff\x10"), v_null()],
                [v_special_int(8), v_special_int(7), v_special_float(3), v_special_float(1),
                 v_bool(False), v_text(b"bad \xff\xc3\x28 nul \x00 ctl \x01\x1f \"q\" \\"),
                 v_bin(b""), v_int(-1)]])
write("fuzz_qstream", "all-types", qstream(0, 5, 3, 3, [types], affected=7))
names = result([(b"", b"int"), (b"x", b"int"), (b"x", b"int"), (b"x_2", b"int"), (b"\xff", b"int"),
                (b"\xfe", b"int"), (b"a" * 150, b"text"), (b"", b"")],
               [[v_int(k) for k in range(8)]])
write("fuzz_qstream", "column-names", qstream(0, 5, 5, 5, [names]))
empty = result([(b"one", b"int")], [])
nocols = result([], [[], []])
write("fuzz_qstream", "batch", qstream(4, 5, 1, 0, [users, empty, nocols, types], affected=-3))
write("fuzz_qstream", "no-results", qstream(2, 0, 0, 0, [], affected=12))
write("fuzz_qstream", "error-mid-rows", qstream(0, 5, 4, 4, [result([(b"a", b"int")],
                                                                      [[v_int(1)], [v_int(2)]], fail=0xF1)]))
write("fuzz_qstream", "error-next-result", qstream(0, 5, 4, 4, [users], fail=0xF1))

# --- fuzz_tds_wire --------------------------------------------------------------
# byte 0: mode (0 stream, 1 PRELOGIN, 2 LOGIN7, 3 batch, 4 RPC, ...), byte 1:
# version index (3 = TDS 7.4), then the payload.

V74 = 3
COLLATION = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])


def u16(s):
    return s.encode("utf-16-le")


def prelogin():
    opts = [(0x00, b"\x0c\x00\x10\x00\x00\x00"),  # VERSION
            (0x01, b"\x00"),                       # ENCRYPTION off
            (0x02, b"\x00"),                       # INSTOPT
            (0x03, b"\x00\x00\x00\x00"),           # THREADID
            (0x04, b"\x00")]                       # MARS
    table_len = 5 * len(opts) + 1
    table, data = b"", b""
    for tok, val in opts:
        table += struct.pack(">BHH", tok, table_len + len(data), len(val))
        data += val
    return table + b"\xff" + data


def obfuscate(b):
    return bytes((((c << 4) | (c >> 4)) & 0xFF) ^ 0xA5 for c in b)


def login7(user="sa", password="S3cret!", database="master", version=0x74000004):
    fields = [("host", "fuzzhost"), ("user", user), ("password", password), ("app", "fuzz"),
              ("server", "127.0.0.1"), ("unused", ""), ("library", "DB-Library"),
              ("language", "us_english"), ("database", database)]
    fixed_len = 94
    data = b""
    offs = []
    for name, value in fields:
        raw = u16(value)
        if name == "password":
            raw = obfuscate(raw)
        offs.append((fixed_len + len(data), len(value)))
        data += raw
    fixed = struct.pack("<IIIIII", fixed_len + len(data), version, 4096, 7, 1234, 0)
    fixed += bytes([0xE0, 0x03, 0x00, 0x00]) + struct.pack("<iI", 0, 0x409)
    for off, cch in offs:
        fixed += struct.pack("<HH", off, cch)
    fixed += b"\x00" * 6 + struct.pack("<HHHHHHI", 0, 0, 0, 0, 0, 0, 0)
    assert len(fixed) == fixed_len, len(fixed)
    return fixed + data


def all_headers():
    return struct.pack("<IIHQI", 22, 18, 2, 0, 1)


def batch(sql):
    return all_headers() + u16(sql)


def nvarchar_param(name, value, maxlen=8000):
    v = u16(value)
    return pname(name) + b"\x00" + b"\xe7" + struct.pack("<H", maxlen) + COLLATION + \
        struct.pack("<H", len(v)) + v


def pname(name):
    return bytes([len(name)]) + u16(name)


def rpc_executesql():
    out = all_headers() + struct.pack("<HHH", 0xFFFF, 10, 0)
    out += nvarchar_param("", "SELECT @id AS id, @name AS name, @d AS d")
    out += nvarchar_param("", "@id int, @name nvarchar(max), @d decimal(10,2), @b bit, @f float, "
                              "@dt datetime2(7), @g uniqueidentifier, @v varbinary(16), @n int")
    out += pname("@id") + b"\x00" + b"\x26\x04" + b"\x04" + struct.pack("<i", 42)
    name = u16("Zoë 𝄞")
    out += pname("@name") + b"\x00" + b"\xe7\xff\xff" + COLLATION + struct.pack("<Q", len(name)) + \
        struct.pack("<I", len(name)) + name + struct.pack("<I", 0)
    out += pname("@d") + b"\x00" + b"\x6a\x11\x0a\x02" + b"\x05\x00" + struct.pack("<I", 1234)
    out += pname("@b") + b"\x00" + b"\x68\x01" + b"\x01\x01"
    out += pname("@f") + b"\x00" + b"\x6d\x08" + b"\x08" + struct.pack("<d", -2.5)
    out += pname("@dt") + b"\x00" + b"\x2a\x07" + b"\x08" + (36000000000).to_bytes(5, "little") + \
        (738000).to_bytes(3, "little")
    out += pname("@g") + b"\x00" + b"\x24\x10" + b"\x10" + bytes(range(16))
    out += pname("@v") + b"\x00" + b"\xa5\x10\x00" + struct.pack("<H", 3) + b"\x00\xff\x7f"
    out += pname("@n") + b"\x00" + b"\x26\x04" + b"\x00"
    return out


def packet(ptype, payload, eom=True, pid=1):
    return struct.pack(">BBHHBB", ptype, 1 if eom else 0, 8 + len(payload), 0, pid, 0) + payload


write("fuzz_tds_wire", "prelogin", bytes([1, V74]) + prelogin())
write("fuzz_tds_wire", "login7", bytes([2, V74]) + login7())
write("fuzz_tds_wire", "login7-71", bytes([2, 0]) + login7(version=0x71000001, database=""))
write("fuzz_tds_wire", "batch", bytes([3, V74]) + batch("SELECT id, name FROM users WHERE id = 1"))
write("fuzz_tds_wire", "batch-71", bytes([3, 0]) + u16("SELECT 1; SELECT N'ü'"))
write("fuzz_tds_wire", "rpc", bytes([4, V74]) + rpc_executesql())
sql = batch("SELECT * FROM users")
stream = packet(0x12, prelogin()) + packet(0x10, login7()) + \
    packet(0x01, sql[:20], eom=False) + packet(0x01, sql[20:], pid=2) + packet(0x03, rpc_executesql())
write("fuzz_tds_wire", "stream", bytes([0, V74]) + stream)
