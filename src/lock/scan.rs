//! Scanning host files into lock entries.
