// The scalar of a stage's precision-dependent arithmetic (`Precision` in src/stages.rs): f64 where
// the adapter has 64-bit floats in shaders, else f32. `#import real` after the stage's header.
#ifdef F64
alias real = f64;
#else
alias real = f32;
#endif
