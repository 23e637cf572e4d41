//! Materialise a lock into an output: chroot directory or tarball.
