//! The read-only commands: `measure` (loudness), `compare` (null residual), `check` (stems vs mix).
