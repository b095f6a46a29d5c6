//! Block reader for AIFF, FLAC and other containers, through symphonia 0.6.
