//! Coefficient design shared by both engines: computed once on the CPU in f64, handed out as f32
//! tables so that the engines differ only in the order of arithmetic (DESIGN.md "DSP").
pub mod eq_design;
pub mod kweighting;
pub mod oversampling;
