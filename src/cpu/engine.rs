//! The CPU engine: runs a render pass block by block with the stages of this folder.
