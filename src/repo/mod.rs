//! The SQLite repository of locks, and the blob store.
