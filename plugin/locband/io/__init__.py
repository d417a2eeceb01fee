"""File readers and writers: the only code in locband that touches files."""

from locband.errors import InputFileError
from locband.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from locband.io.mrc import MapData, read_map, write_map

__all__ = ["InputFileError", "MapData", "read_map", "write_map", "atomic_write_bytes",
           "atomic_write_text", "atomic_path"]
