//! The resolver: the closure of requested packages over the package universe.
