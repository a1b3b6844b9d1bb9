#!/usr/bin/env python3
"""Re-encodes a token shard (data/shards.h) with each chunk as one zstd frame of stored
(uncompressed) blocks and no checksum: the same content, but a fuzzer's byte flips land on the
sequence records themselves (the seeds of fuzz/corpus/shard). Needs the zstd command.
    python3 fuzz/shard_stored.py IN.bin OUT.bin"""
import struct, subprocess, sys

def stored_frame(raw):
    # magic, descriptor 0xA0 (single segment, 4-byte content size, no checksum), blocks of <= 128 KiB
    out = bytearray(struct.pack('<IB', 0xFD2FB528, 0xA0) + struct.pack('<I', len(raw)))
    pos = 0
    while True:
        part = raw[pos:pos + (128 << 10)]
        pos += len(part)
        last = pos >= len(raw)
        out += struct.pack('<I', (len(part) << 3) | int(last))[:3] + part
        if last:
            return bytes(out)

data = open(sys.argv[1], 'rb').read()
n_chunks = struct.unpack_from('<I', data, 40)[0]
head = 64 + 32 * n_chunks
table, frames = bytearray(), bytearray()
for i in range(n_chunks):
    off, comp, raw_n, first, n = struct.unpack_from('<QQQII', data, 64 + 32 * i)
    raw = subprocess.run(['zstd', '-dc'], input=data[off:off + comp], capture_output=True, check=True).stdout
    assert len(raw) == raw_n
    f = stored_frame(raw)
    table += struct.pack('<QQQII', head + len(frames), len(f), raw_n, first, n)
    frames += f
open(sys.argv[2], 'wb').write(data[:64] + bytes(table) + bytes(frames))
