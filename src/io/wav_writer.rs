//! Atomic WAV/RF64 writer: temp file in the destination folder, renamed on `finish`.
