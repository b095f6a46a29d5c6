//! BS.1770-4 / EBU R128 metering through the `ebur128` crate, with the layout's channel weights.
//!
//! SKELETON: the analysis work fills this in.
