"""Upload limits, said once: what each upload box states, what the package enforces, and
(through the largest) what the server accepts at all.

Every `st.file_uploader` passes its entry's `megabytes` as `max_upload_size`, so the box
states the limit and the browser refuses a larger file with its own message. The browser is
the only place Streamlit checks that per-box limit: the server checks just its global
`server.maxUploadSize` (.streamlit/config.toml, equal to SERVER_MAX_UPLOAD_MB). A client that
skips the browser can therefore send any box up to the largest limit, so each consumer of
uploaded bytes checks its own entry again (`check`, or the room's constant made from it).
A box whose limit were above the server's would end in a bare "413" instead of a message.
tests/test_server_settings.py holds the table, the boxes and config.toml together.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UploadTooLarge

__all__ = ["UploadLimit", "IMAGE_UPLOAD", "MODEL_UPLOAD", "DATASET_ZIP_UPLOAD", "CONFIG_UPLOAD",
           "UPLOAD_LIMITS", "SERVER_MAX_UPLOAD_MB", "DISPLAYED_MB_MAX"]

MB = 2**20  # the server's megabyte (server.maxUploadSize); see DISPLAYED_MB_MAX for the box's
# Streamlit's upload box writes its limit in whole units of 1000 (1024 on some systems), moving
# to the next unit above half of one: 512 MB reads "1GB per file". At most 500 it reads as set.
DISPLAYED_MB_MAX = 500


@dataclass(frozen=True)
class UploadLimit:
    what: str  # for messages: "… may be at most 25 MB"
    megabytes: int  # whole MB: the unit of st.file_uploader's max_upload_size

    @property
    def max_bytes(self) -> int:
        return self.megabytes * MB

    def check(self, name: str, size: int) -> None:
        """Refuse `size` bytes named `name` when they are over the limit, in words."""
        if size > self.max_bytes:
            raise UploadTooLarge(f"{name} is {size / MB:.1f} MB; {self.what} may be at most "
                                 f"{self.megabytes} MB")


# A photo from a phone is 2–12 MB; decoding is bounded separately (pixels, sides, scans).
IMAGE_UPLOAD = UploadLimit("an image", 25)
# ResNet34 is 87 MB in float32; the parameter bound lets an imported variant be larger.
MODEL_UPLOAD = UploadLimit("a model file", 500)
# Held in memory while it is checked and extracted; a larger dataset belongs in a folder.
DATASET_ZIP_UPLOAD = UploadLimit("a dataset zip", 500)
# An architecture or recipe is ~1 kB of JSON; 1 MB is the smallest limit a box can state.
CONFIG_UPLOAD = UploadLimit("a config file", 1)

UPLOAD_LIMITS = (IMAGE_UPLOAD, MODEL_UPLOAD, DATASET_ZIP_UPLOAD, CONFIG_UPLOAD)
SERVER_MAX_UPLOAD_MB = max(limit.megabytes for limit in UPLOAD_LIMITS)
