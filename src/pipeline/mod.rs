//! The render pipeline around the engines: the plan both engines execute (`plan`), the stems in
//! (`source`), the outputs and the meter (`sink`), the analysis pass's spill (`spill`), the loudness
//! solve on it (`solve`), the search for G (`target`), the output files (`outputs`), the passes
//! (`passes`), the proof page's data (`proof`) and the `render` command that drives them.
pub mod cache;
pub mod normalise;
pub mod outputs;
pub mod passes;
pub mod plan;
pub mod proof;
pub mod render;
pub mod segments;
pub mod sink;
pub mod solve;
pub mod source;
pub mod spill;
pub mod target;
