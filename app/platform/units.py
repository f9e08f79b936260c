"""Byte units, one home for them: sizes in settings (``S3_SINGLE_PUT_MAX_MIB``), the copy's buffers and part sizes,
the job timeout's assumed transfer rate."""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
