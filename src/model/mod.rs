//! Domain types every room shares: the bus layout, sample formats and encodings, EQ bands and
//! filters, the stages of a `process` chain. They are what the session file says, but the engines, I/O and reports depend on them,
//! not on the parser (`session`), which builds them.
pub mod content;
mod delivery;
mod eq;
mod format;
mod layout;
mod process;
mod profile;

pub use delivery::{FRAME_RATES, FrameRate, Origination, Timecode};
pub use eq::{EqBand, EqDesign, Filter, Phase};
pub use format::{Dither, OutputKind, SampleFormat, SourceEncoding};
pub use layout::Layout;
pub use process::{Compressor, Detector, Process, Saturation, Share, StageKeys, Transient, Width};
pub use profile::{LoudnessRule, Normalised, PROFILE_NAMES, Profile, ProfileCheck, ProgrammeFallback};
