//! WAV and RF64 reader: chunk parser and raw PCM streaming (symphonia 0.6 has no RF64 support).
