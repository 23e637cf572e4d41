//! Work that waits on the disk more than on the CPU.

/// Runs `work` on a pool with more threads than cores: reading a cold tree, or syncing
/// many small files, waits on the disk, not the CPU.
pub(crate) fn in_io_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    match rayon::ThreadPoolBuilder::new()
        .num_threads((cores * 2).max(4))
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}
