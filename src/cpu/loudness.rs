//! TEMPORARY shim while the meter moves to `crate::meter`.
pub use crate::meter::*;
