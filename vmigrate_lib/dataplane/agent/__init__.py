"""vmigrate data-plane agent: runs where the disks are.

Standard library only, Python 3.5+ syntax, so that it runs on the python3 that
ESXi ships.  It speaks a framed binary protocol (:mod:`.protocol`) on
stdin/stdout: a pipe locally, an SSH exec channel remotely.  Over SSH the
package travels as one zipapp (``vmigrate_lib.dataplane.transport.agent_zipapp``).

    protocol    frames, constants, compression flags (the client imports it too)
    hashing     block digests (xxhash/blake3 when importable, libxxhash, hashlib always)
    sparse      allocated regions (SEEK_DATA), zero grains, hole punching
    packing     DATA compressed on a thread pool, on only where it pays (and decoded alike)
    codeclib    zstd/lz4 through the host's libzstd/liblz4 (ctypes, no process per frame)
    codecbin    zstd/lz4 through the host's tools, one process per frame
    readback    the destination's certify digests, read back from what it wrote
    probe       what the served file system does (SEEK_DATA, punch, vmkfstools), at HELLO
    vmkfs       disks created provisioned as the source's (vmkfstools -c -d)
    ops_files   small one-request operations (stat, listdir, files, disks)
    ops_stream  read / write / hash streams
    ops_push    direct mode: push to a peer agent started over ssh, probe_peer
    server      the Agent (handshake, dispatch) and main()

Reads skip holes and send all-zero blocks as HOLE frames, so a thin disk costs
only its allocated bytes.
"""
