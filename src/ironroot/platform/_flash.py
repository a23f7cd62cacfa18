"""The platform's flash: one file per chip, a fixed region layout, and who may write where.

A node's flash is a file per chip in ``<node>/flash/``: ``rot.bin`` (the RoT's own flash) and
one ``<component>.bin`` per firmware component (``bmc``, ``host``, ``nic``, ``gpu``, ``nvme``).
Each file is laid out in 4 KiB erase blocks (all integers big-endian; erased bytes read 0x00
in this model, which is what a sparse file gives)::

    0     8  magic b"IRFLASH1"
    8     2  layout version (1)
    10    2  region count n
    12    4  erase block size (4096)
    16   32  chip name, UTF-8, NUL-padded
    48    8  chip size in bytes
    56  32n  region table: name (16 bytes, NUL-padded), offset (8), size (8)
    ..   32  SHA-256 of bytes 0 .. 56+32n (the header's own integrity)
    4096 ..  the regions, each a whole number of erase blocks, in table order

A component chip has the regions ``slot0`` and ``slot1`` (the two firmware slots: the RoT's
journal names the active one; the other is where an update is written), ``staging`` (the
received update, kept while it is verified), ``recovery`` (the last known good image, replaced
only after new firmware has booted healthy) and ``rw`` (the component's own read-write data,
the only range the component itself may write, and only where the active PFM says so). The RoT
chip has ``pfm0``, ``pfm1`` and ``pfm-recovery`` (the signed PFM, with the same slot rules),
``journal`` (:mod:`ironroot.platform._journal`) and ``log`` (the RoT's event log).

An image region (slot, staging, recovery, PFM slot) holds a 64-byte image header — magic
b"IRIMAGE1" (8), image length (8), SHA-384 of the image (48) — followed by the image. The
header is what a torn write breaks: a region whose header does not describe the bytes after it
reads as empty. Which image is *allowed* is never taken from the header: boot compares the
bytes with the PFM.

The chip header is not trusted either: its digest only catches accidents (anyone can recompute
a SHA-256), so a chip opens only when its header names the chip its file is named for and its
region table is exactly :func:`chip_layout` for that chip — at the slot size the node's
configuration gives, when the :class:`Flash` is told it. A header that moves, grows or renames
a region (say, a journal region that claims the whole of a huge sparse file) is
``DeviceStateTampered`` code ``flash-header``. A chip file that is a symbolic link is refused
(``flash-symlink``): the RoT writes only to its own chips.

Writes. :class:`Flash` only reads. Protected writes go through :class:`RotFlashWriter`, which
only the RoT (:mod:`ironroot.platform._node`) constructs; the BMC and everything above it get
a :class:`BmcSpiPort`, which — like Cerberus' SPI filter — passes a write only when the whole
range lies inside the component's ``rw`` region *and* inside a read-write region of the active
PFM; anything else raises ``FlashProtected``, is logged by the RoT, and changes no byte.

Nothing in this file is hand-written for want of a library: it is the byte layout itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ironroot._fileio import fsync_dir, make_dirs
from ironroot.errors import ConfigError, DeviceStateTampered, LimitExceeded, StorageError

__all__ = [
    "BLOCK",
    "COMPONENT_REGIONS",
    "IMAGE_HEADER_SIZE",
    "ROT_REGIONS",
    "Chip",
    "Flash",
    "ImageHeader",
    "PowerLost",
    "Region",
    "RotFlashWriter",
    "chip_layout",
]

BLOCK: Final = 4096
MAGIC: Final = b"IRFLASH1"
IMAGE_MAGIC: Final = b"IRIMAGE1"
IMAGE_HEADER_SIZE: Final = 64
_LAYOUT_VERSION: Final = 1
_HEADER: Final = struct.Struct(">8sHHI32sQ")
_ENTRY: Final = struct.Struct(">16sQQ")
_IMAGE: Final = struct.Struct(">8sQ48s")
_CHUNK: Final = 256 * 1024
COMPONENT_REGIONS: Final = ("slot0", "slot1", "staging", "recovery", "rw")
ROT_REGIONS: Final = ("pfm0", "pfm1", "pfm-recovery", "journal", "log")
_ROT_SIZES: Final = {
    "pfm0": 256 * 1024,
    "pfm1": 256 * 1024,
    "pfm-recovery": 256 * 1024,
    "journal": 1024 * 1024,
    "log": 256 * 1024,
}
RW_SIZE: Final = 64 * 1024
MAX_SLOT: Final = 256 * 1024 * 1024


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    def contains(self, offset: int, length: int) -> bool:
        return self.offset <= offset and offset + length <= self.end


@dataclass(frozen=True, slots=True)
class ImageHeader:
    length: int
    sha384: bytes


def chip_layout(chip: str, slot_size: int) -> tuple[Region, ...]:
    """The regions of chip ``chip`` ("rot" or a component with ``slot_size``-byte slots)."""
    offset = BLOCK
    regions = []
    if chip == "rot":
        sizes: Sequence[tuple[str, int]] = tuple(_ROT_SIZES.items())
    else:
        if not BLOCK <= slot_size <= MAX_SLOT:
            raise ConfigError(f"a firmware slot is 4 KiB to {MAX_SLOT >> 20} MiB")
        slot = _blocks(slot_size + IMAGE_HEADER_SIZE)
        sizes = (("slot0", slot), ("slot1", slot), ("staging", slot), ("recovery", slot))
        sizes = (*sizes, ("rw", RW_SIZE))
    for name, size in sizes:
        regions.append(Region(name, offset, size))
        offset += size
    return tuple(regions)


def _encode_header(chip: str, regions: Sequence[Region]) -> bytes:
    name = chip.encode()
    size = regions[-1].end
    head = _HEADER.pack(MAGIC, _LAYOUT_VERSION, len(regions), BLOCK, name.ljust(32, b"\0"), size)
    table = b"".join(
        _ENTRY.pack(r.name.encode().ljust(16, b"\0"), r.offset, r.size) for r in regions
    )
    body = head + table
    return body + hashlib.sha256(body).digest()


def _decode_header(data: bytes, path: Path) -> tuple[str, tuple[Region, ...], int]:
    def bad(why: str) -> DeviceStateTampered:
        return DeviceStateTampered(f"flash chip {path.name}: {why}", code="flash-header")

    if len(data) < _HEADER.size:
        raise bad("the header is truncated")
    magic, version, count, block, raw_name, size = _HEADER.unpack_from(data)
    if magic != MAGIC or version != _LAYOUT_VERSION or block != BLOCK or not 1 <= count <= 16:
        raise bad("not an Ironroot flash chip of layout 1")
    end = _HEADER.size + count * _ENTRY.size
    if hashlib.sha256(data[:end]).digest() != data[end : end + 32]:
        raise bad("the header's digest does not match")
    regions = []
    for i in range(count):
        raw, offset, length = _ENTRY.unpack_from(data, _HEADER.size + i * _ENTRY.size)
        regions.append(Region(raw.rstrip(b"\0").decode("ascii", "replace"), offset, length))
    return raw_name.rstrip(b"\0").decode("ascii", "replace"), tuple(regions), size


def _fd(path: Path, flags: int) -> int:
    """Open a chip file, never through a symbolic link (``O_NOFOLLOW``), and only a regular
    file (``flash-not-a-file``: a named pipe held open by a writer kept every reader waiting;
    opened without blocking, so one with no writer is refused too)."""
    return _open_chip(path, flags)[0]


def _open_chip(path: Path, flags: int) -> tuple[int, int]:
    """:func:`_fd`, and the size of the file opened (from the ``fstat`` that checks it). A
    descriptor opened to read stays without blocking: that changes nothing for a regular
    file, which is all this opens, and saves two ``fcntl`` calls an open."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as exc:
        raise StorageError(f"flash chip {path.name} is missing", code="flash-missing") from exc
    except OSError as exc:
        if path.is_symlink():
            raise DeviceStateTampered(
                f"flash chip {path.name} is a symbolic link", code="flash-symlink"
            ) from exc
        raise StorageError(f"flash chip {path.name}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        regular = stat.S_ISREG(info.st_mode)
        if regular and flags != os.O_RDONLY:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise DeviceStateTampered(
            f"flash chip {path.name} is not a regular file", code="flash-not-a-file"
        )
    return fd, info.st_size


def _pread(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes of the chip file at ``offset`` (fewer only where it ends), read from
    the descriptor without a buffered file object (which would ``fstat``, ``ioctl`` and
    ``lseek`` on opening, and copy through its buffer)."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        piece = os.pread(fd, length - got, offset + got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def _open_read(path: Path) -> io.BufferedReader:
    return os.fdopen(_fd(path, os.O_RDONLY), "rb")


def _open_write(path: Path) -> io.BufferedRandom:
    return os.fdopen(_fd(path, os.O_RDWR), "r+b")


def _expected_layout(
    path: Path, name: str, regions: Sequence[Region], slot_size: int | None
) -> tuple[Region, ...]:
    """The layout chip ``name`` must have: the RoT's, or a component's at ``slot_size`` (when
    the node's configuration is known) or at the slot size its own table implies."""
    if name == "rot":
        return chip_layout("rot", 0)
    if slot_size is None:
        slot_size = regions[0].size - IMAGE_HEADER_SIZE if regions else 0
    try:
        return chip_layout(name, slot_size)
    except ConfigError as exc:
        raise DeviceStateTampered(
            f"flash chip {path.name}: {exc.detail}", code="flash-header"
        ) from exc


class Chip:
    """One flash chip (a file), read-only. Writes are :class:`RotFlashWriter`'s.

    ``slot_size``: the slot size the node's configuration gives this (component) chip; its
    header must then describe exactly that layout (see the module docstring).
    """

    def __init__(self, path: Path, slot_size: int | None = None) -> None:
        try:
            fd, actual = _open_chip(path, os.O_RDONLY)
            try:
                self._read_header(path, slot_size, fd, actual)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"flash chip {path.name}: {exc.strerror}") from exc

    @classmethod
    def _opened(cls, path: Path, slot_size: int | None, fd: int, actual: int) -> Chip:
        """The chip of the file ``path`` the caller opened (``fd``, ``actual`` bytes long),
        checked as :class:`Chip` checks it; ``fd`` stays open for the caller to read on."""
        chip = cls.__new__(cls)
        try:
            chip._read_header(path, slot_size, fd, actual)
        except OSError as exc:
            raise StorageError(f"flash chip {path.name}: {exc.strerror}") from exc
        return chip

    def _read_header(self, path: Path, slot_size: int | None, fd: int, actual: int) -> None:
        self.path = path
        header = _pread(fd, BLOCK, 0)
        self.name, regions, self.size = _decode_header(header, path)
        if self.name != path.stem:
            raise DeviceStateTampered(
                f"flash chip {path.name} says it is chip {self.name!r}", code="flash-header"
            )
        if regions != _expected_layout(path, self.name, regions, slot_size):
            raise DeviceStateTampered(
                f"flash chip {path.name}: its region table is not the layout of a "
                f"{self.name} chip" + (f" with {slot_size}-byte slots" if slot_size else ""),
                code="flash-header",
            )
        if self.size != regions[-1].end:
            raise DeviceStateTampered(
                f"flash chip {path.name}: its size is not its regions' end", code="flash-header"
            )
        if actual != self.size:
            raise DeviceStateTampered(
                f"flash chip {path.name} is {actual} bytes, its header says {self.size}",
                code="flash-header",
            )
        self.regions: Mapping[str, Region] = {r.name: r for r in regions}

    def region(self, name: str) -> Region:
        try:
            return self.regions[name]
        except KeyError:
            raise ConfigError(f"flash chip {self.name} has no region {name!r}") from None

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise LimitExceeded(f"a read beyond flash chip {self.name}")
        fd = _fd(self.path, os.O_RDONLY)
        try:
            data = _pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(data) != length:
            raise StorageError(f"flash chip {self.name} is shorter than its layout")
        return data

    def image_header(self, region: str) -> ImageHeader | None:
        """The image header of an image region; ``None`` when the region holds no image."""
        r = self.region(region)
        magic, length, digest = _IMAGE.unpack(self.read(r.offset, _IMAGE.size))
        if magic != IMAGE_MAGIC or length > r.size - IMAGE_HEADER_SIZE:
            return None
        return ImageHeader(length, digest)

    def _image_file(self, region: str) -> tuple[ImageHeader, io.BufferedReader] | None:
        """The image header of an image region and the chip file, positioned at the image."""
        header = self.image_header(region)
        if header is None:
            return None
        handle = _open_read(self.path)
        handle.seek(self.region(region).offset + IMAGE_HEADER_SIZE)
        return header, handle

    def image(self, region: str) -> tuple[bytes, bytes] | None:
        """(image, SHA-384 of the bytes read) of an image region, or ``None`` when it is empty
        or its bytes do not match its header (a torn write).

        The image is read in one call into one buffer (the region bounds its length): reading
        it in chunks and joining them costs as much as hashing it (an allocation and a copy
        per chunk), and boot reads every active slot this way.
        """
        fd = _fd(self.path, os.O_RDONLY)  # one open for the header and the image
        try:
            return self._image_at(fd, region)
        finally:
            os.close(fd)

    def _image_at(self, fd: int, region: str) -> tuple[bytes, bytes] | None:
        """:meth:`image`, read from ``fd``, the chip file opened by the caller."""
        r = self.region(region)
        raw = _pread(fd, _IMAGE.size, r.offset)
        if len(raw) != _IMAGE.size:
            raise StorageError(f"flash chip {self.name} is shorter than its layout")
        magic, length, expected = _IMAGE.unpack(raw)
        if magic != IMAGE_MAGIC or length > r.size - IMAGE_HEADER_SIZE:
            return None
        data = _pread(fd, length, r.offset + IMAGE_HEADER_SIZE)
        header = ImageHeader(length, expected)
        if len(data) != header.length:
            raise StorageError(f"flash chip {self.name} is shorter than its layout")
        digest = hashlib.sha384(data).digest()
        return (data, digest) if digest == header.sha384 else None

    def image_digest(self, region: str) -> bytes | None:
        """SHA-384 of an image region's bytes, streamed through one bounded buffer; ``None``
        when empty or torn."""
        opened = self._image_file(region)
        if opened is None:
            return None
        header, handle = opened
        h = hashlib.sha384()
        buffer = memoryview(bytearray(min(_CHUNK, header.length)))
        with handle:
            left = header.length
            while left:
                got = handle.readinto(buffer[: min(len(buffer), left)])
                if not got:
                    raise StorageError(f"flash chip {self.name} is shorter than its layout")
                h.update(buffer[:got])
                left -= got
        digest = h.digest()
        return digest if digest == header.sha384 else None


class Flash:
    """The node's chips, read-only. ``slot_sizes`` (component → slot size, from the node's
    configuration) pins each component chip's layout; without it a chip must still have the
    layout of its kind."""

    def __init__(self, directory: Path, slot_sizes: Mapping[str, int] | None = None) -> None:
        self.directory = directory
        self._slot_sizes = dict(slot_sizes) if slot_sizes is not None else None
        self._chips: dict[str, Chip] = {}

    def _path_and_size(self, name: str) -> tuple[Path, int | None]:
        size = None
        if self._slot_sizes is not None and name != "rot":
            if name not in self._slot_sizes:
                raise ConfigError(f"the node has no flash chip {name!r}")
            size = self._slot_sizes[name]
        return self.directory / f"{name}.bin", size

    def chip(self, name: str) -> Chip:
        found = self._chips.get(name)
        if found is None:
            found = self._chips[name] = Chip(*self._path_and_size(name))
        return found

    def image(self, chip: str, region: str) -> tuple[bytes, bytes] | None:
        """``chip(chip).image(region)`` (:meth:`Chip.image`): a chip not opened yet is opened
        once, for its header and the image, which are then read from the same file."""
        found = self._chips.get(chip)
        if found is not None:
            return found.image(region)
        path, size = self._path_and_size(chip)
        try:
            fd, actual = _open_chip(path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"flash chip {path.name}: {exc.strerror}") from exc
        try:
            found = self._chips[chip] = Chip._opened(path, size, fd, actual)
            return found._image_at(fd, region)
        finally:
            os.close(fd)

    @staticmethod
    def format(directory: Path, chips: Mapping[str, int]) -> None:
        """Create erased chip files: ``chips`` maps a chip name to its slot size (rot: 0).
        Each is synced and so are their names in ``directory`` (a power cut after the RoT
        journals the node's creation keeps its chips)."""
        make_dirs(directory)
        for name, slot_size in chips.items():
            regions = chip_layout(name, slot_size)
            path = directory / f"{name}.bin"
            with path.open("xb") as handle:
                handle.write(_encode_header(name, regions))
                handle.truncate(regions[-1].end)
                handle.flush()
                os.fsync(handle.fileno())
        fsync_dir(directory)


class PowerLost(BaseException):
    """A simulated power loss (fault injection). Deliberately not an ``IronrootError`` nor an
    ``Exception``: nothing on the update path may catch it and carry on, exactly as nothing
    runs after the power goes."""

    def __init__(self, step: str) -> None:
        self.step = step
        super().__init__(f"power lost during {step}")


PowerCut = Callable[[str, int], "int | None"]
"""``(what, length)`` is called before each chunk of ``length`` bytes of a write tagged
``what``; it returns ``None`` to let the chunk through, or ``k`` to write only the chunk's
first ``k`` bytes and then lose power (:class:`PowerLost`)."""


class RotFlashWriter:
    """The RoT's write path to flash: program image regions and raw ranges.

    Every write is chunked (256 KiB) and each chunk is flushed and synced before the next, so a
    power loss leaves a prefix written; ``cut`` sees each chunk (fault injection).
    """

    def __init__(self, flash: Flash, cut: PowerCut | None = None) -> None:
        self.flash = flash
        self.cut = cut

    def write(self, chip: str, offset: int, data: bytes, *, what: str = "write") -> None:
        c = self.flash.chip(chip)
        if offset < BLOCK or offset + len(data) > c.size:
            raise LimitExceeded(f"a write outside the regions of flash chip {chip}")
        try:
            with _open_write(c.path) as handle:
                done = 0
                while done < len(data):
                    chunk = data[done : done + _CHUNK]
                    torn = self.cut(what, len(chunk)) if self.cut is not None else None
                    if torn is not None:
                        chunk = chunk[:torn]
                    handle.seek(offset + done)
                    handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                    if torn is not None:
                        raise PowerLost(what)
                    done += len(chunk)
        except OSError as exc:
            # A full disk, a file size limit, an I/O error: the write did not happen (or
            # only a prefix of it did, as a power loss leaves it), which the RoT reports
            # as its own typed failure, never as the operating system's.
            raise StorageError(
                f"flash chip {c.path.name} cannot be written: {exc.strerror or exc}",
                code="flash-write",
            ) from exc

    def write_image(self, chip: str, region: str, image: bytes, *, what: str = "write") -> bytes:
        """Program ``image`` into an image region (header last, so a torn write reads empty);
        return its SHA-384."""
        r = self.flash.chip(chip).region(region)
        if len(image) > r.size - IMAGE_HEADER_SIZE:
            raise LimitExceeded(
                f"an image of {len(image)} bytes does not fit {chip}.{region} "
                f"({r.size - IMAGE_HEADER_SIZE} bytes)"
            )
        digest = hashlib.sha384(image).digest()
        self.write(chip, r.offset, bytes(IMAGE_HEADER_SIZE), what=f"{what}-header")
        self.write(chip, r.offset + IMAGE_HEADER_SIZE, image, what=what)
        header = _IMAGE.pack(IMAGE_MAGIC, len(image), digest).ljust(IMAGE_HEADER_SIZE, b"\0")
        self.write(chip, r.offset, header, what=f"{what}-header")
        return digest

    def erase_image(self, chip: str, region: str) -> None:
        r = self.flash.chip(chip).region(region)
        self.write(chip, r.offset, bytes(IMAGE_HEADER_SIZE), what="erase")
