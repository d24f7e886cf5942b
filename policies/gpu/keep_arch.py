"""Zero the GPU code a CUDA library carries for architectures other than
one, so that the library compresses to what a GPU machine's transfer limit
allows (prepare.sh; ONNX Runtime's CUDA provider: 284 MB, of which the
`.nv_fatbin` section is 218 MB of machine code for sm_75 ... sm_120).

    python3 policies/gpu/keep_arch.py LIB 90     # writes LIB.sm90

The fatbin section is a run of fatbins (header: u32 magic 0xBA55ED50, u16
version, u16 header size, u64 payload size), each a run of entries (u16
kind, u16 version, u32 header size, u64 payload size, ..., u32 sm at byte
28). Entries for another `sm` keep their headers and get zero payloads:
the CUDA driver picks an entry by its header and never reads the others,
and the library's layout (offsets, sizes) does not change. For a transfer
to one known GPU only; never for a library that ships.
"""

import struct
import subprocess
import sys

MAGIC = 0xBA55ED50


def fatbin_section(path: str) -> tuple[int, int]:
    out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if ".nv_fatbin" in line:
            f = line.split("]", 1)[1].split()
            return int(f[3], 16), int(f[4], 16)  # file offset, size
    sys.exit(f"{path}: no .nv_fatbin section")


def main() -> None:
    path, keep = sys.argv[1], int(sys.argv[2])
    data = bytearray(open(path, "rb").read())
    off, size = fatbin_section(path)
    pos, end, kept, zeroed = off, off + size, 0, 0
    while pos + 16 <= end:
        magic, _, hsize, fsize = struct.unpack_from("<IHHQ", data, pos)
        if magic != MAGIC:  # fatbins are 8-byte aligned, padding between them
            pos += 8
            continue
        e, eend = pos + hsize, pos + hsize + fsize
        while e < eend:
            _, _, ehsize, psize = struct.unpack_from("<HHIQ", data, e)
            sm = struct.unpack_from("<I", data, e + 28)[0]
            if sm == keep:
                kept += psize
            else:
                data[e + ehsize:e + ehsize + psize] = bytes(psize)
                zeroed += psize
            e += ehsize + psize
        pos = eend
    if kept == 0:
        sys.exit(f"{path}: no code for sm_{keep}")
    open(f"{path}.sm{keep}", "wb").write(data)
    print(f"{path}: kept {kept / 1e6:.1f} MB for sm_{keep}, zeroed {zeroed / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
