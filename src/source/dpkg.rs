//! Reading an installed package database (dpkg) under a sysroot.
