//! Gain, routing and sum: bus[dst] += weight * stem[src] for each route of each unmuted stem.
//!
//! SKELETON: the render work fills this in.
