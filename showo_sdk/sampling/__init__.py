"""MaskGIT sampling for text-to-image and inpainting: schedules, the C++ loop and its numpy twin.

No torch here: this runs on the edge side. ``HAVE_EXTENSION`` says whether the C++ loop is built.
"""

from __future__ import annotations

from .loop import HAVE_EXTENSION, maskgit_generate
from .reference import maskgit_generate_reference
from .schedule import mask_len_schedule, mask_ratio_schedule, temperature_schedule

__all__ = [
    "HAVE_EXTENSION", "maskgit_generate", "maskgit_generate_reference", "mask_len_schedule",
    "mask_ratio_schedule", "temperature_schedule",
]
