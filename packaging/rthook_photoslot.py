# PyInstaller runtime hook: runs before photoslot inside the one-file binary.
#
# The bootloader points LD_LIBRARY_PATH at the temporary folder it unpacked to, so that Python's
# own extension modules find their libraries. Those are loaded by now (the loader reads the
# variable once, at start); what still reads it are the programs photoslot starts — PostgreSQL
# above all, which outlives the folder. Give them the environment the user started us with.
import os

_orig = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
if _orig is not None:
    os.environ["LD_LIBRARY_PATH"] = _orig
else:
    os.environ.pop("LD_LIBRARY_PATH", None)
